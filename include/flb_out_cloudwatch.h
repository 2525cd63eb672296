/*
 * flb_out_cloudwatch.h — the C interface of libflb_out_cloudwatch.so.
 *
 * The library is a Fluent Bit output plugin speaking Fluent Bit's Go-plugin ABI (the proxy
 * plugin interface of src/flb_plugin_proxy.c and src/proxy/go/go.c). Fluent Bit loads it with
 * `fluent-bit -e /path/libflb_out_cloudwatch.so` or a `Path` line in a [PLUGINS] file, finds
 * these symbols with dlsym, and calls them in this order:
 *
 *   FLBPluginRegister   once, at load
 *   FLBPluginInit       once per [OUTPUT] section with `Name cloudwatch`
 *   FLBPluginFlushCtx   per chunk, per instance; from up to N threads at once with `workers N`
 *   FLBPluginExitCtx    once per instance, at shutdown
 *   FLBPluginUnregister once, after the last exit
 *
 * Works with hosts from Fluent Bit v1.9.10 (AWS for Fluent Bit 2.x) to 5.x: only fields that
 * exist in v1.9.10 are read or written. No function lets a panic or an unwind escape.
 */
#ifndef FLB_OUT_CLOUDWATCH_H
#define FLB_OUT_CLOUDWATCH_H

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes of FLBPluginFlushCtx (and FLBPluginExitCtx). */
#define FLB_ERROR 0 /* the chunk is dropped and counted as an error */
#define FLB_OK    1 /* the chunk is done */
#define FLB_RETRY 2 /* Fluent Bit sends the same chunk again later (up to Retry_Limit) */

#define FLB_PROXY_OUTPUT_PLUGIN 2
#define FLB_PROXY_GOLANG        11

/*
 * The plugin's definition, zero-filled by the host before FLBPluginRegister. v2+ hosts
 * append `int event_type;`, which this plugin never writes (the host's 0 means logs).
 */
struct flb_plugin_proxy_def {
    int   type;        /* set to FLB_PROXY_OUTPUT_PLUGIN */
    int   proxy;       /* set to FLB_PROXY_GOLANG */
    int   flags;       /* set to 0 */
    char *name;        /* set to "cloudwatch": static, never freed */
    char *description; /* static, never freed */
};

/* The host's API table. v1.9.10 has only this field; later versions append more, which
 * this plugin never reads. */
struct flb_api {
    /* The value of `key` (case-insensitive) in this [OUTPUT], or NULL when unset. Called
     * during FLBPluginInit only. */
    const char *(*output_get_property)(const char *key, void *o_ins);
};

struct flb_plugin_proxy_context {
    void *remote_context; /* set by FLBPluginInit; passed back to FlushCtx and ExitCtx */
};

/* What FLBPluginInit receives. */
struct flbgo_output_plugin {
    void *name;                              /* host-owned, unused */
    struct flb_api *api;
    void *o_ins;                             /* opaque; passed to output_get_property */
    struct flb_plugin_proxy_context *context;
};

/* Fills in `def`. Returns 0, or -1 if `def` is NULL. */
int FLBPluginRegister(struct flb_plugin_proxy_def *def);

/*
 * Starts one [OUTPUT] instance: reads and validates its options (region, log_group_name,
 * log_stream_name or log_stream_prefix, log_key, auto_create_group, auto_create_stream,
 * role_arn, external_id, endpoint, sts_endpoint) and stores the instance in
 * plugin->context->remote_context. `plugin` points to a struct flbgo_output_plugin.
 * Makes no network call. Returns 1 on success; 0 on failure, after one log line that names
 * the option, its value and what is accepted.
 */
int FLBPluginInit(void *plugin);

/*
 * Delivers one chunk: `length` bytes of MessagePack records ([time, body] or
 * [[time, metadata], body]) with tag `tag`, both valid until the call returns. Safe to call
 * from several threads at once with the same context. Uses little stack (it runs on Fluent
 * Bit's 24-64 KiB coroutine stack): the work happens on the plugin's own threads while the
 * caller waits. Returns FLB_OK when every event was delivered or rejected with a logged
 * reason, FLB_RETRY when some were not delivered (the cause is logged), FLB_ERROR for a NULL
 * context or a negative length.
 */
int FLBPluginFlushCtx(void *remote_ctx, const void *data, int length, char *tag);

/* Logs the instance's totals and frees it; the last instance stops the plugin's threads.
 * Any other pointer (an instance already exited, as upstream v1.9.10 passes the last
 * instance's context once per instance) exits the oldest instance not yet exited, or does
 * nothing when none is left. Returns FLB_OK. */
int FLBPluginExitCtx(void *remote_ctx);

/* Nothing to free: Register allocated nothing. */
void FLBPluginUnregister(struct flb_plugin_proxy_def *def);

#ifdef __cplusplus
}
#endif

#endif /* FLB_OUT_CLOUDWATCH_H */
