//! Label selectors as Kubernetes reads them: `matchLabels` and
//! `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`), all of them
//! ANDed; an empty selector matches everything.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `selector` matches `labels`; an error names a bad expression.
pub fn matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    if let Some(want) = &selector.match_labels {
        for (k, v) in want {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let values = e.values.as_deref().unwrap_or_default();
        let have = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "matchExpressions[{i}]: {} needs values",
                    e.operator
                ));
            }
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => !have.is_some_and(|v| values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(format!(
                    "matchExpressions[{i}]: unknown operator {other:?} (In, NotIn, Exists, DoesNotExist)"
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(matches(&LabelSelector::default(), &labels(&[])).unwrap());
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "lb")])),
            match_expressions: Some(vec![
                expr("tier", "In", &["edge", "core"]),
                expr("canary", "DoesNotExist", &[]),
                expr("zone", "NotIn", &["b"]),
            ]),
        };
        assert!(matches(&sel, &labels(&[("app", "lb"), ("tier", "edge")])).unwrap());
        assert!(
            matches(
                &sel,
                &labels(&[("app", "lb"), ("tier", "edge"), ("zone", "a")])
            )
            .unwrap()
        );
        assert!(!matches(&sel, &labels(&[("app", "lb"), ("tier", "dev")])).unwrap());
        assert!(!matches(&sel, &labels(&[("app", "web"), ("tier", "edge")])).unwrap());
        assert!(
            !matches(
                &sel,
                &labels(&[("app", "lb"), ("tier", "edge"), ("canary", "1")])
            )
            .unwrap()
        );
        assert!(
            !matches(
                &sel,
                &labels(&[("app", "lb"), ("tier", "edge"), ("zone", "b")])
            )
            .unwrap()
        );
        let exists = LabelSelector {
            match_expressions: Some(vec![expr("app", "Exists", &[])]),
            ..Default::default()
        };
        assert!(matches(&exists, &labels(&[("app", "x")])).unwrap());
        assert!(!matches(&exists, &labels(&[])).unwrap());
    }

    #[test]
    fn bad_expressions_are_errors() {
        let sel = LabelSelector {
            match_expressions: Some(vec![expr("app", "Like", &["x"])]),
            ..Default::default()
        };
        assert!(
            matches(&sel, &labels(&[]))
                .unwrap_err()
                .contains("unknown operator")
        );
        let sel = LabelSelector {
            match_expressions: Some(vec![expr("app", "In", &[])]),
            ..Default::default()
        };
        assert!(
            matches(&sel, &labels(&[]))
                .unwrap_err()
                .contains("needs values")
        );
    }
}
