//! The ECS task's metadata, for `$(ecs_task_id)`, `$(ecs_cluster)` and `$(ecs_task_arn)`.
//!
//! Read from `$ECS_CONTAINER_METADATA_URI_V4/task` (else `$ECS_CONTAINER_METADATA_URI/task`)
//! once per process, with a 2-second timeout, then cached. A failed fetch is tried again on
//! the next flush (the failed flush answers `FLB_RETRY`, so nothing goes to a default name
//! by accident). Outside ECS (neither variable set) there is no metadata and the variables
//! fail, so the default names apply.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::http;
use crate::template::Ecs;

const TIMEOUT: Duration = Duration::from_secs(2);

static CACHE: Mutex<Option<Arc<Ecs>>> = Mutex::new(None);

/// The metadata: `Ok(None)` outside ECS, `Err` when the endpoint did not answer usefully.
pub fn metadata() -> Result<Option<Arc<Ecs>>, String> {
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(ecs) = cache.as_ref() {
        return Ok(Some(ecs.clone()));
    }
    let Some(base) = std::env::var("ECS_CONTAINER_METADATA_URI_V4")
        .or_else(|_| std::env::var("ECS_CONTAINER_METADATA_URI"))
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return Ok(None);
    };
    let url = format!("{}/task", base.trim_end_matches('/'));
    let (status, body) = http::get(&url, &[], TIMEOUT)?;
    if status != 200 {
        return Err(format!("{url} answered HTTP {status}"));
    }
    let ecs = Arc::new(parse(&body).map_err(|e| format!("{url}: {e}"))?);
    *cache = Some(ecs.clone());
    Ok(Some(ecs))
}

/// The task metadata document → the values templates use. The cluster is shown by name
/// even when ECS gives its ARN.
pub fn parse(body: &str) -> Result<Ecs, String> {
    let doc: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let task_arn = doc["TaskARN"]
        .as_str()
        .ok_or("no TaskARN in the task metadata")?
        .to_owned();
    let cluster = doc["Cluster"].as_str().unwrap_or_default();
    Ok(Ecs {
        task_id: task_arn.rsplit('/').next().unwrap_or_default().to_owned(),
        cluster: cluster.rsplit('/').next().unwrap_or_default().to_owned(),
        task_arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_task_metadata() {
        let doc = r#"{"Cluster":"arn:aws:ecs:ap-northeast-1:111111111111:cluster/prod","TaskARN":"arn:aws:ecs:ap-northeast-1:111111111111:task/prod/0123456789abcdef","Family":"httpd"}"#;
        let e = parse(doc).unwrap();
        assert_eq!(e.task_id, "0123456789abcdef");
        assert_eq!(e.cluster, "prod");
        assert!(e.task_arn.ends_with("task/prod/0123456789abcdef"));
        assert!(parse("{}").is_err());
        assert!(parse("not json").is_err());
    }
}
