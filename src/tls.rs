//! The one TLS stack of both binaries: rustls with the ring provider, for the LLM's `https://`
//! (reqwest) and Redis's `rediss://` (redis-rs). Neither library is built with a provider of its
//! own (no aws-lc-rs, see Cargo.toml), so the process needs one installed before its first TLS
//! connection.

/// Installs ring as rustls's process-wide crypto provider. Idempotent: an error from rustls only
/// means one is installed already, which is then ring too (the only one compiled in).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_provider_is_ring_and_installing_twice_is_harmless() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        let p = rustls::crypto::CryptoProvider::get_default().expect("a provider");
        assert!(!p.cipher_suites.is_empty());
    }
}
