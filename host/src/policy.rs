//! IAM policy documents as the tests take them apart: a policy's actions, and the policy
//! without one of them.

use serde_json::Value;

/// The actions of `policy`'s statements, in their order (`Action` a string or a list).
pub fn actions(policy: &Value) -> Vec<String> {
    let statements = policy["Statement"].as_array().map(Vec::as_slice);
    statements
        .unwrap_or_default()
        .iter()
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(list) => list
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// `policy` without `action`: each statement's `Action` becomes the list of its other
/// actions, and a statement left with none is dropped.
pub fn without_action(policy: &Value, action: &str) -> Value {
    let mut p = policy.clone();
    if let Some(statements) = p["Statement"].as_array_mut() {
        for s in statements.iter_mut() {
            let kept = actions(&serde_json::json!({ "Statement": [s.clone()] }))
                .into_iter()
                .filter(|a| a != action)
                .map(Value::from)
                .collect();
            s["Action"] = Value::Array(kept);
        }
        statements.retain(|s| s["Action"].as_array().is_some_and(|a| !a.is_empty()));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_is_taken_out_and_an_empty_statement_dropped() {
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "G", "Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "g"},
            {"Sid": "S", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "s"}
        ]});
        assert_eq!(
            actions(&policy),
            [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents"
            ]
        );
        let without = without_action(&policy, "logs:CreateLogGroup");
        assert_eq!(without["Statement"].as_array().map(Vec::len), Some(1));
        let without = without_action(&policy, "logs:PutLogEvents");
        assert_eq!(
            actions(&without),
            ["logs:CreateLogGroup", "logs:CreateLogStream"]
        );
        assert_eq!(without["Statement"][1]["Resource"], "s");
    }
}
