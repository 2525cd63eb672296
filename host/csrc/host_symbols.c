/*
 * A stand-in for what a Fluent Bit binary exports in its dynamic symbol table, for
 * flb-host to load with RTLD_GLOBAL before the plugin (as if the plugin were loaded into a
 * real fluent-bit process). Three builds of this file:
 *
 *   FLB_HOST_V5 defined: what Fluent Bit >= 2.0 (read on v4.1.2 and v5.1.1; one build for
 *     each one's instance layout) exports that the plugin
 *     may use: flb_output_get_property, flb_output_log_check, flb_output_name,
 *     flb_output_get_cmt_instance, flb_log_print, cmt_counter_create, cmt_counter_add,
 *     cmt_counter_inc.
 *   not defined: what v1.9.10 exports of those: flb_log_print and cmt_counter_create only.
 *   Both: flb_output_set_property (for `workers`; see below).
 *
 * flb_log_print writes `[host:LEVEL] message` lines to stderr, so tests can tell lines that
 * went through the host from the plugin's own. The counters are a small cmetrics stand-in:
 * flbhost_dump_counters() prints every series as `[host-metric] name{labels} value`.
 * The `o_ins` these functions receive is flb-host's `FakeInstance` (see host.rs).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>

struct fake_instance {        /* flb-host's FakeInstance, #[repr(C)] */
    void *properties;
    const char *name;
    int log_level;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void flb_log_print(int type, const char *file, int line, const char *fmt, ...)
{
    static const char *names[] = {"off", "error", "warn", "info", "debug", "trace"};
    char buf[4096];
    va_list args;
    (void) file;
    (void) line;
    va_start(args, fmt);
    vsnprintf(buf, sizeof(buf), fmt, args);
    va_end(args);
    pthread_mutex_lock(&lock);
    fprintf(stderr, "[host:%s] %s\n", (type >= 0 && type <= 5) ? names[type] : "?", buf);
    fflush(stderr);
    pthread_mutex_unlock(&lock);
}

/*
 * flb_output_set_property, as far as the plugin uses it: `workers` sets the instance's
 * worker count (`tp_workers`), which flb-host reads after Init to choose the thread a flush
 * runs on. It lies where Fluent Bit has it (FLBHOST_TP_WORKERS_OFFSET: byte 608 of v1.9.10's
 * 696-byte instance, 768 of v4.1.2's 864, 872 of v5.1.1's 968, with Fluent Bit's default
 * build options), inside
 * an instance as big as the real one, so that a plugin looking for it must find it as it
 * would in Fluent Bit. Both versions export the function. Other keys are accepted and
 * ignored (the plugin sets none).
 */
int flb_output_set_property(void *ins, const char *k, const char *v)
{
    if (ins == NULL || k == NULL) {
        return -1;
    }
    if (strcasecmp(k, "workers") == 0 && v != NULL) {
        *(int *) ((char *) ins + FLBHOST_TP_WORKERS_OFFSET) = atoi(v);
    }
    return 0;
}

/* The cmetrics stand-in. */
#define MAX_SERIES 256
struct cmt { int unused; };
struct cmt_counter {
    char name[256];
    char keys[4][64];
    int label_count;
};
struct series {
    struct cmt_counter *counter;
    char labels[256];
    double value;
};

struct cmt_counter *cmt_counter_create(struct cmt *cmt, char *ns, char *subsystem,
                                       char *name, char *help, int label_count,
                                       char **label_keys)
{
    struct cmt_counter *c;
    int i;
    (void) help;
    if (cmt == NULL || label_count < 0 || label_count > 4) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    snprintf(c->name, sizeof(c->name), "%s_%s_%s", ns, subsystem, name);
    for (i = 0; i < label_count; i++) {
        snprintf(c->keys[i], sizeof(c->keys[i]), "%s", label_keys[i]);
    }
    c->label_count = label_count;
    return c;
}

#ifdef FLB_HOST_V5
static struct cmt the_cmt;
static struct series all_series[MAX_SERIES];
static int series_count;

/* flb-host's property reader (Rust), registered before Init. */
static const char *(*property_reader)(const char *, void *);

void flbhost_set_property_reader(const char *(*reader)(const char *, void *))
{
    property_reader = reader;
}

const char *flb_output_get_property(const char *key, void *ins)
{
    return property_reader ? property_reader(key, ins) : NULL;
}

int flb_output_log_check(void *ins, int level)
{
    return ((struct fake_instance *) ins)->log_level >= level;
}

const char *flb_output_name(void *ins)
{
    return ((struct fake_instance *) ins)->name;
}

void *flb_output_get_cmt_instance(void *ins)
{
    (void) ins;
    return &the_cmt;
}

static struct series *find(struct cmt_counter *c, int labels_count, char **vals)
{
    char labels[256] = "";
    size_t used = 0;
    int i;
    if (c == NULL || labels_count != c->label_count) {
        return NULL;
    }
    for (i = 0; i < labels_count; i++) {
        used += snprintf(labels + used, sizeof(labels) - used, "%s%s=\"%s\"",
                         i ? "," : "", c->keys[i], vals[i]);
        if (used >= sizeof(labels)) {
            return NULL;
        }
    }
    for (i = 0; i < series_count; i++) {
        if (all_series[i].counter == c && strcmp(all_series[i].labels, labels) == 0) {
            return &all_series[i];
        }
    }
    if (series_count == MAX_SERIES) {
        return NULL;
    }
    all_series[series_count].counter = c;
    snprintf(all_series[series_count].labels, sizeof(labels), "%s", labels);
    return &all_series[series_count++];
}

int cmt_counter_add(struct cmt_counter *c, uint64_t ts, double val, int labels_count,
                    char **vals)
{
    struct series *s;
    (void) ts;
    pthread_mutex_lock(&lock);
    s = find(c, labels_count, vals);
    if (s != NULL) {
        s->value += val;
    }
    pthread_mutex_unlock(&lock);
    return s == NULL ? -1 : 0;
}

int cmt_counter_inc(struct cmt_counter *c, uint64_t ts, int labels_count, char **vals)
{
    return cmt_counter_add(c, ts, 1.0, labels_count, vals);
}

void flbhost_dump_counters(void)
{
    int i;
    pthread_mutex_lock(&lock);
    for (i = 0; i < series_count; i++) {
        fprintf(stderr, "[host-metric] %s{%s} %.0f\n", all_series[i].counter->name,
                all_series[i].labels, all_series[i].value);
    }
    fflush(stderr);
    pthread_mutex_unlock(&lock);
}
#endif
