//! The ECS task's metadata, for `$(ecs_task_id)`, `$(ecs_cluster)` and `$(ecs_task_arn)`.
//!
//! Read from `$ECS_CONTAINER_METADATA_URI/task`, the endpoint AWS's Go plugin reads (so
//! that `Cluster` is the very value it used), else `$ECS_CONTAINER_METADATA_URI_V4/task`
//! (ECS sets both in every task that has the second), with a 2-second timeout, once per
//! process, then cached. No lock is held while the endpoint is read: flushes that need the
//! metadata before it is cached each read it (the first answer is kept), and none waits for
//! another's read. A failed read is tried again on the next flush (the failed flush answers
//! `FLB_RETRY`, so nothing goes to a default name by accident). Outside ECS (neither
//! variable set) there is no metadata and the variables fail, so the default names apply.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::http;
use crate::template::Ecs;

const TIMEOUT: Duration = Duration::from_secs(2);

/// The metadata, once read.
static CACHE: OnceLock<Arc<Ecs>> = OnceLock::new();

/// The metadata: `Ok(None)` outside ECS, `Err` when the endpoint did not answer usefully.
pub fn metadata() -> Result<Option<Arc<Ecs>>, String> {
    let base = [
        "ECS_CONTAINER_METADATA_URI",
        "ECS_CONTAINER_METADATA_URI_V4",
    ]
    .into_iter()
    .filter_map(|v| std::env::var(v).ok())
    .find(|u| !u.is_empty());
    metadata_from(&CACHE, base.as_deref(), TIMEOUT)
}

/// [`metadata`] with its cache, endpoint and timeout given.
fn metadata_from(
    cache: &OnceLock<Arc<Ecs>>,
    base: Option<&str>,
    timeout: Duration,
) -> Result<Option<Arc<Ecs>>, String> {
    if let Some(ecs) = cache.get() {
        return Ok(Some(ecs.clone()));
    }
    let Some(base) = base else {
        return Ok(None);
    };
    let url = format!("{}/task", base.trim_end_matches('/'));
    let (status, body) = http::get(&url, &[], timeout)?;
    if status != 200 {
        return Err(format!("{url} answered HTTP {status}"));
    }
    let ecs = parse(&body).map_err(|e| format!("{url}: {e}"))?;
    Ok(Some(cache.get_or_init(|| Arc::new(ecs)).clone()))
}

/// The task metadata document → the values templates use, as the Go plugin takes them:
/// `Cluster` as it is (an ARN or a name, whichever ECS gives), the task id the last `/` part
/// of the task ARN's resource.
pub fn parse(body: &str) -> Result<Ecs, String> {
    let doc: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let task_arn = doc["TaskARN"]
        .as_str()
        .ok_or("no TaskARN in the task metadata")?
        .to_owned();
    let resource = task_arn
        .splitn(6, ':')
        .nth(5)
        .ok_or_else(|| format!("TaskARN {task_arn:?} is not an ARN"))?;
    Ok(Ecs {
        task_id: resource.rsplit('/').next().unwrap_or_default().to_owned(),
        cluster: doc["Cluster"].as_str().unwrap_or_default().to_owned(),
        task_arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    const DOC: &str = r#"{"Cluster":"arn:aws:ecs:ap-northeast-1:111111111111:cluster/prod","TaskARN":"arn:aws:ecs:ap-northeast-1:111111111111:task/prod/0123456789abcdef","Family":"httpd"}"#;

    #[test]
    fn parses_task_metadata() {
        let e = parse(DOC).unwrap();
        assert_eq!(e.task_id, "0123456789abcdef");
        assert_eq!(
            e.cluster, "arn:aws:ecs:ap-northeast-1:111111111111:cluster/prod",
            "as the Go plugin takes it"
        );
        assert!(e.task_arn.ends_with("task/prod/0123456789abcdef"));
        let short =
            parse(r#"{"Cluster":"default","TaskARN":"arn:aws:ecs:us-east-1:1:task/abc"}"#).unwrap();
        assert_eq!(
            (short.cluster.as_str(), short.task_id.as_str()),
            ("default", "abc")
        );
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"TaskARN":"not-an-arn"}"#).is_err());
        assert!(parse("not json").is_err());
    }

    /// A read of the endpoint that hangs does not hold up another flush's read: the second
    /// caller gets the metadata while the first still waits for its answer. (Before, one
    /// global lock was held across the read, so every flush of every instance waited
    /// behind it, up to its timeout.)
    #[test]
    fn a_slow_read_does_not_block_other_callers() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/v3", server.local_addr().unwrap());
        let cache = Arc::new(OnceLock::new());
        let (first_done_tx, first_done) = mpsc::channel();
        std::thread::scope(|s| {
            let (cache1, base1) = (cache.clone(), base.clone());
            s.spawn(move || {
                let r = metadata_from(&cache1, Some(&base1), Duration::from_secs(30));
                first_done_tx.send(r).unwrap();
            });
            // The first read arrives and is left unanswered.
            let (mut hanging, _) = server.accept().unwrap();
            let mut request = [0u8; 512];
            let _ = hanging.read(&mut request).unwrap();
            // A second caller meanwhile: answered at once.
            let (cache2, base2) = (cache.clone(), base.clone());
            let second =
                s.spawn(move || metadata_from(&cache2, Some(&base2), Duration::from_secs(30)));
            let (mut answered, _) = server.accept().unwrap();
            let _ = answered.read(&mut request).unwrap();
            let response = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{DOC}",
                DOC.len()
            );
            answered.write_all(response.as_bytes()).unwrap();
            drop(answered);
            let got = second.join().unwrap().unwrap().unwrap();
            assert_eq!(got.task_id, "0123456789abcdef");
            assert!(
                first_done.try_recv().is_err(),
                "the second caller waited for the first read"
            );
            // Now the first read is answered too (an error); the cached value stays.
            hanging.write_all(b"HTTP/1.0 500 Oops\r\n\r\n").unwrap();
            drop(hanging);
            assert!(first_done.recv().unwrap().is_err());
        });
        assert_eq!(
            metadata_from(&cache, None, TIMEOUT)
                .unwrap()
                .unwrap()
                .task_id,
            "0123456789abcdef",
            "cached"
        );
    }
}
