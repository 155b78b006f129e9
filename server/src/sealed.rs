//! Secrets Rampart must read back — a webhook's signing key — sealed at rest with a key from the
//! environment (`RAMPART_SECRET_KEYS`): ChaCha20-Poly1305 with a random nonce, so a database
//! dump or backup does not carry them. The first key seals; every listed key opens, so a key is
//! rotated by listing the new one first, running `rampart secrets reseal`, then dropping the old.
//! Stored as `sealed:v1:<key id>:<nonce>:<ciphertext>` (hex); a value without the prefix is a
//! secret stored before keys were configured, and is read as it is. (A leaf.)

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};
use std::fmt;

const PREFIX: &str = "sealed:v1:";
/// Binds a sealed value to what it is: it cannot be moved to another use unnoticed.
const PURPOSE: &[u8] = b"rampart webhook secret v1";

/// The configured keys, the sealing one first.
#[derive(Clone, Default)]
pub struct SecretKeys(Vec<([u8; 32], String)>);

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys: their ids only.
        f.debug_tuple("SecretKeys").field(&self.0.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>()).finish()
    }
}

impl SecretKeys {
    /// Parses `KEY[,KEY…]`, each 32 bytes as 64 hex digits (`openssl rand -hex 32`).
    pub fn parse(list: &str) -> Result<SecretKeys, String> {
        let mut keys = Vec::new();
        for (i, text) in list.split(',').map(str::trim).filter(|t| !t.is_empty()).enumerate() {
            let bytes = hex::decode(text).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
            let key = bytes.ok_or_else(|| format!("key {} of RAMPART_SECRET_KEYS is not 64 hex digits (32 bytes)", i + 1))?;
            keys.push((key, hex::encode(&Sha256::digest(key)[..4])));
        }
        Ok(SecretKeys(keys))
    }

    pub fn is_configured(&self) -> bool {
        !self.0.is_empty()
    }

    /// The value to store for `secret`: sealed with the first key, or as it is without keys.
    pub fn seal(&self, secret: &str) -> String {
        let Some((key, id)) = self.0.first() else { return secret.to_string() };
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the operating system's random source is available");
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: PURPOSE })
            .expect("ChaCha20-Poly1305 seals any message this short");
        format!("{PREFIX}{id}:{}:{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// The secret in a stored value: opened with the key it names, or as it is if it was
    /// stored unsealed.
    pub fn open(&self, stored: &str) -> Result<String, String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
        let mut parts = rest.splitn(3, ':');
        let (Some(id), Some(nonce), Some(sealed)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("a sealed secret is malformed".into());
        };
        let (key, _) = self
            .0
            .iter()
            .find(|(_, k)| k == id)
            .ok_or_else(|| format!("the secret is sealed with key {id}, which RAMPART_SECRET_KEYS no longer lists"))?;
        let nonce = hex::decode(nonce).ok().filter(|n| n.len() == 12).ok_or("a sealed secret's nonce is malformed")?;
        let sealed = hex::decode(sealed).map_err(|_| "a sealed secret is malformed")?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
        let plain = cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &sealed, aad: PURPOSE })
            .map_err(|_| format!("the secret sealed with key {id} does not open: altered, or the key is not the one it was sealed with"))?;
        String::from_utf8(plain).map_err(|_| "a sealed secret is not text".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_nothing_else() {
        let keys = SecretKeys::parse(A).unwrap();
        let sealed = keys.seal("whsec_abc");
        assert!(sealed.starts_with("sealed:v1:") && !sealed.contains("whsec_abc"), "{sealed}");
        assert_ne!(keys.seal("whsec_abc"), sealed, "a new nonce every time");
        assert_eq!(keys.open(&sealed).unwrap(), "whsec_abc");
        // Rotation: the new key seals, the old one still opens what it sealed.
        let both = SecretKeys::parse(&format!("{B},{A}")).unwrap();
        assert_eq!(both.open(&sealed).unwrap(), "whsec_abc");
        assert_eq!(SecretKeys::parse(B).unwrap().open(&both.seal("x")).unwrap(), "x");
        assert!(SecretKeys::parse(B).unwrap().open(&sealed).unwrap_err().contains("no longer lists"));
        // Altered in the database: refused, never a wrong secret.
        let mut altered = sealed.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == '0' { '1' } else { '0' });
        assert!(keys.open(&altered).unwrap_err().contains("does not open"));
        // Unsealed values (stored before keys were set) read as they are; no keys, no sealing.
        assert_eq!(keys.open("whsec_plain").unwrap(), "whsec_plain");
        assert_eq!(SecretKeys::default().seal("whsec_plain"), "whsec_plain");
        // Bad keys are refused by position; Debug shows ids, never keys.
        assert_eq!(SecretKeys::parse("abc").unwrap_err(), "key 1 of RAMPART_SECRET_KEYS is not 64 hex digits (32 bytes)");
        assert!(!format!("{keys:?}").contains(A));
    }
}
