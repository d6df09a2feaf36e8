//! TCP-MD5 keys from Secrets (`passwordSecretRef`).
//!
//! The node watches only the Secrets labelled [`LABEL`]`=true` (in every
//! namespace, as it watches PodPeerings): what it holds in memory and
//! receives are the BGP keys, not every Secret of the cluster. A
//! PodPeering's `passwordSecretRef` names a Secret of its own namespace and
//! a key of its `data` (the API server keeps `stringData` there too). The
//! value is checked as file mode checks `password`: not empty, at most
//! [`MAX_PASSWORD_LEN`] bytes, UTF-8 without control characters; one
//! trailing newline is dropped (as from `kubectl create secret
//! --from-file`, and as the sidecar reads the same Secret mounted as a
//! file).
//!
//! A key never appears in messages, logs or `Debug` output: [`SecretKeys`]
//! shows key names only, [`Password`] hides itself.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::crd::SecretKeyRef;
use crate::config::{MAX_PASSWORD_LEN, Password};

/// The label a Secret needs for the node to see it.
pub const LABEL: &str = "podpeer.io/bgp-password";

/// The watch's label selector.
pub fn label_selector() -> String {
    format!("{LABEL}=true")
}

/// Status reason: the Secret (labelled [`LABEL`]) is not there.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";

/// Status reason: the Secret has no such key, or its value is no TCP-MD5 key.
pub const INVALID_SECRET: &str = "InvalidSecret";

/// The data of one Secret. Its `Debug` names the keys, never the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretKeys(BTreeMap<String, Vec<u8>>);

impl SecretKeys {
    /// The data of `secret` (decoded from base64 by the client already).
    pub fn of(secret: &Secret) -> Self {
        Self(
            secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
        )
    }

    /// From key names and values (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_vec()))
                .collect(),
        )
    }
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The watched Secrets by `namespace/name`.
pub type Secrets = BTreeMap<String, SecretKeys>;

/// The labelled Secrets of `secrets` by `namespace/name`.
pub fn index<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Secrets {
    secrets
        .into_iter()
        .map(|s| {
            (
                format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()),
                SecretKeys::of(s),
            )
        })
        .collect()
}

/// Why a PodPeering's key cannot be had: the status reason and a message
/// (which never holds the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    /// [`SECRET_NOT_FOUND`] or [`INVALID_SECRET`].
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// The key `r` names in `namespace`.
pub fn password(
    secrets: &Secrets,
    namespace: &str,
    r: &SecretKeyRef,
) -> Result<Password, KeyProblem> {
    let what = format!("Secret {namespace}/{}", r.name);
    let Some(data) = secrets.get(&format!("{namespace}/{}", r.name)) else {
        return Err(KeyProblem {
            reason: SECRET_NOT_FOUND,
            message: format!(
                "passwordSecretRef: no {what} labelled {LABEL}=true (the node sees only \
                 labelled Secrets); no session is set up without the password"
            ),
        });
    };
    let invalid = |why: String| KeyProblem {
        reason: INVALID_SECRET,
        message: format!("passwordSecretRef: {what} key {:?}: {why}", r.key),
    };
    let Some(raw) = data.0.get(&r.key) else {
        let keys: Vec<&str> = data.0.keys().map(String::as_str).collect();
        return Err(invalid(format!(
            "no such key (it has: {})",
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.join(", ")
            }
        )));
    };
    decode(raw).map_err(invalid)
}

/// A Secret's value as a TCP-MD5 key, or why it is none (never showing it).
pub fn decode(raw: &[u8]) -> Result<Password, String> {
    let raw = match raw.strip_suffix(b"\n") {
        Some(r) => r.strip_suffix(b"\r").unwrap_or(r),
        None => raw,
    };
    let key = std::str::from_utf8(raw).map_err(|_| "the value is not UTF-8 text".to_owned())?;
    if key.is_empty() {
        return Err("the value is empty".into());
    }
    if key.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "the value has {} bytes: a TCP-MD5 key has at most {MAX_PASSWORD_LEN} (TCP_MD5SIG_MAXKEYLEN)",
            key.len()
        ));
    }
    if key.chars().any(char::is_control) {
        return Err("the value holds a control character (a line break?)".into());
    }
    Ok(Password::from(key))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn r(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }

    #[test]
    fn values_are_checked_as_file_mode_checks_passwords() {
        assert_eq!(decode(b"s3cret").unwrap().expose(), "s3cret");
        assert_eq!(decode(b"s3cret\n").unwrap().expose(), "s3cret");
        assert_eq!(decode(b"s3cret\r\n").unwrap().expose(), "s3cret");
        assert_eq!(decode(&[b'k'; 80]).unwrap().len(), 80);
        for (raw, why) in [
            (&b""[..], "the value is empty"),
            (b"\n", "the value is empty"),
            (b"s3cret\n\n", "control character"),
            (b"s3\tcret", "control character"),
            (b"\xff\xfe", "not UTF-8"),
            (&[b'k'; 81], "81 bytes: a TCP-MD5 key has at most 80"),
        ] {
            let e = decode(raw).unwrap_err();
            assert!(e.contains(why), "{raw:?}: {e}");
        }
    }

    #[test]
    fn a_missing_secret_or_key_is_a_problem_that_never_shows_the_key() {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "bgp", "namespace": "web",
                         "labels": {LABEL: "true"}},
            // "s3cret" and "bad\nkey", base64 as the API server sends them.
            "data": {"password": "czNjcmV0", "broken": "YmFkCmtleQ=="},
        }))
        .unwrap();
        let secrets = index([&secret]);
        assert_eq!(
            password(&secrets, "web", &r("bgp", "password"))
                .unwrap()
                .expose(),
            "s3cret"
        );
        let e = password(&secrets, "other", &r("bgp", "password")).unwrap_err();
        assert_eq!(e.reason, SECRET_NOT_FOUND);
        assert!(
            e.message
                .contains("no Secret other/bgp labelled podpeer.io/bgp-password=true")
        );
        let e = password(&secrets, "web", &r("bgp", "nope")).unwrap_err();
        assert_eq!(e.reason, INVALID_SECRET);
        assert_eq!(
            e.message,
            "passwordSecretRef: Secret web/bgp key \"nope\": no such key (it has: broken, password)"
        );
        let e = password(&secrets, "web", &r("bgp", "broken")).unwrap_err();
        assert_eq!(e.reason, INVALID_SECRET);
        assert!(e.message.contains("control character"), "{}", e.message);
        let shown = format!("{secrets:?} {e:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("bad"),
            "{shown}"
        );
        assert_eq!(
            format!("{secrets:?}"),
            r#"{"web/bgp": {"broken", "password"}}"#
        );
    }
}
