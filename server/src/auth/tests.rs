//! Tests of `auth.rs`: password hashes, secrets, tokens and cookies read from requests, user names.

use super::*;

#[test]
fn passwords_hash_with_argon2id_and_verify() {
    let hash = hash_password("correct horse battery").unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(verify_password("correct horse battery", &hash));
    assert!(!verify_password("correct horse batterx", &hash));
}

#[test]
fn secrets_are_256_bits_and_distinct() {
    let (a, b) = (new_secret(), new_secret());
    assert_eq!(a.len(), 64);
    assert_ne!(a, b);
}

#[test]
fn tokens_come_from_either_header() {
    let mut h = HeaderMap::new();
    h.insert("authorization", "Bearer abc".parse().unwrap());
    assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
    let mut h = HeaderMap::new();
    h.insert("x-api-key", "xyz".parse().unwrap());
    assert_eq!(bearer_token(&h).as_deref(), Some("xyz"));
}

#[test]
fn cookies_are_found_by_name() {
    let mut h = HeaderMap::new();
    h.insert("cookie", "a=1; rampart_session=s3cr3t; b=2".parse().unwrap());
    assert_eq!(cookie(&h, SESSION_COOKIE), Some("s3cr3t"));
    assert_eq!(cookie(&h, SHARE_COOKIE), None);
}

#[test]
fn user_names_are_plain() {
    assert!(valid_user_name("ana.lopez"));
    assert!(!valid_user_name("Ana"));
    assert!(!valid_user_name(""));
    assert!(!valid_user_name("-x"));
}
