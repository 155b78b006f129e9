//! Fresh random secrets: session ids, API tokens, share links, webhook signing secrets (a leaf).

/// A fresh random secret as hex: 256 bits.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    hex::encode(bytes)
}
