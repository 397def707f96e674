//! Reading what central signed with its published keys: a receipt opens under the key its
//! `kid` names, and nothing altered, retyped, addressed elsewhere or signed by another key does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use gridsync_core::signed::{KeySet, RECEIPT_TYP, Receipt, SignedError};
use serde_json::{Value, json};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn jwks(keys: &[(&str, &SigningKey)]) -> Vec<u8> {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, key)| {
            json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "keys": keys })).expect("json")
}

fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let head = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).expect("json"));
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"));
    let signature = key.sign(format!("{head}.{body}").as_bytes());
    format!(
        "{head}.{body}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

fn receipt_claims() -> Value {
    json!({
        "iss": "https://central", "aud": "gridsync-offline", "hub": "hub-1", "dev": "phone-1",
        "push": "00", "iat": 10,
        "docs": [{ "doc": "doc-1", "heads": ["ab"], "held": false }],
    })
}

fn header(kid: &str) -> Value {
    json!({ "alg": "EdDSA", "typ": RECEIPT_TYP, "kid": kid })
}

#[test]
fn a_receipt_signed_by_a_published_key_opens_with_its_claims() {
    let (old, new) = (key(1), key(2));
    let keys = KeySet::from_jwks(&jwks(&[("k-old", &old), ("k-new", &new)])).expect("keys");
    let jws = sign(&new, &header("k-new"), &receipt_claims());
    let receipt: Receipt = keys.open(&jws, RECEIPT_TYP).expect("opens");
    assert_eq!((receipt.dev.as_str(), receipt.docs.len()), ("phone-1", 1));
}

#[test]
fn nothing_altered_retyped_misaddressed_or_signed_elsewhere_opens() {
    let central = key(1);
    let keys = KeySet::from_jwks(&jwks(&[("k", &central)])).expect("keys");
    let open = |jws: &str| keys.open::<Receipt>(jws, RECEIPT_TYP).unwrap_err();

    let good = sign(&central, &header("k"), &receipt_claims());
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut claims = receipt_claims();
    claims["dev"] = json!("phone-2");
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
    assert_eq!(open(&parts.join(".")), SignedError::BadSignature);

    assert_eq!(
        open(&sign(&key(9), &header("k"), &receipt_claims())),
        SignedError::BadSignature
    );
    assert_eq!(
        open(&sign(&central, &header("other"), &receipt_claims())),
        SignedError::UnknownKey
    );
    let grant_typed = json!({ "alg": "EdDSA", "typ": "gridsync-grant+jwt", "kid": "k" });
    assert_eq!(
        open(&sign(&central, &grant_typed, &receipt_claims())),
        SignedError::WrongType(RECEIPT_TYP)
    );
    let hmac = json!({ "alg": "HS256", "typ": RECEIPT_TYP, "kid": "k" });
    assert_eq!(
        open(&sign(&central, &hmac, &receipt_claims())),
        SignedError::WrongType(RECEIPT_TYP)
    );
    let mut access = receipt_claims();
    access["aud"] = json!("gridsync-api");
    assert_eq!(
        open(&sign(&central, &header("k"), &access)),
        SignedError::WrongType(RECEIPT_TYP)
    );
    for junk in ["", "a.b", "a.b.c.d", "!!.??.**"] {
        assert_eq!(open(junk), SignedError::Malformed, "{junk}");
    }
}

#[test]
fn a_key_set_without_an_ed25519_key_is_refused() {
    for body in [
        &br#"{"keys":[]}"#[..],
        br#"{"keys":[{"kty":"RSA","kid":"r","n":"x","e":"AQAB"}]}"#,
        br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"short"}]}"#,
        b"not json",
    ] {
        assert!(matches!(
            KeySet::from_jwks(body),
            Err(SignedError::KeySet(_))
        ));
    }
}
