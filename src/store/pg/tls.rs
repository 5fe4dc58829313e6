//! TLS to the database with rustls, with libpq's `sslmode` meanings:
//!
//! | sslmode | TLS | certificate |
//! | --- | --- | --- |
//! | `disable` | never | – |
//! | `prefer` (default) | when the server offers it | not verified |
//! | `require` | always | not verified, unless `sslrootcert` is given (then as `verify-ca`) |
//! | `verify-ca` | always | chain verified against `sslrootcert` (or the public CAs) |
//! | `verify-full` | always | chain and host name verified |
//!
//! libpq's `sslrootcert` (a PEM file of the CAs to trust) and the `verify-*` modes are taken out
//! of the URL here: the driver knows only `disable`, `prefer` and `require`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Encryption only (libpq's `prefer` and `require`).
    None,
    /// The chain up to a trusted CA, whatever name the certificate is for.
    Ca,
    /// The chain and the host name.
    Full,
}

/// The URL the driver can parse, how to verify, and the `sslrootcert` file if any.
pub struct Split {
    pub url: String,
    pub verify: Verify,
    pub root_cert: Option<String>,
}

/// Take `sslmode=verify-ca|verify-full` and `sslrootcert` out of `url` (`verify-*` becomes the
/// driver's `require`).
pub fn split(url: &str) -> Split {
    let Some((main, query)) = url.split_once('?') else {
        return Split {
            url: url.to_string(),
            verify: Verify::None,
            root_cert: None,
        };
    };
    let mut verify = None;
    let mut root_cert = None;
    let mut kept: Vec<String> = Vec::new();
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("sslrootcert", v)) => root_cert = Some(v.to_string()),
            Some(("sslmode", "verify-ca")) => {
                verify = Some(Verify::Ca);
                kept.push("sslmode=require".into());
            }
            Some(("sslmode", "verify-full")) => {
                verify = Some(Verify::Full);
                kept.push("sslmode=require".into());
            }
            _ => kept.push(kv.to_string()),
        }
    }
    // As libpq: `require` with a root certificate verifies the chain.
    let verify = verify.unwrap_or(match root_cert {
        Some(_) => Verify::Ca,
        None => Verify::None,
    });
    let url = match kept.is_empty() {
        true => main.to_string(),
        false => format!("{main}?{}", kept.join("&")),
    };
    Split {
        url,
        verify,
        root_cert,
    }
}

/// The rustls client configuration for `verify`, trusting `root_cert`'s CAs when given, else
/// the public CAs (webpki-roots). Errors are messages for the operator.
pub fn config(verify: Verify, root_cert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert={path}: cannot read a PEM certificate: {e}"))?;
            if certs.is_empty() {
                return Err(format!("sslrootcert={path}: holds no PEM certificate"));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert={path}: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let verifier = Arc::new(Verifier {
        verify,
        webpki,
        provider: provider.clone(),
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

#[derive(Debug)]
struct Verifier {
    verify: Verify,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.verify == Verify::None {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            })) if self.verify == Verify::Ca => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    // The handshake's signatures are always checked: "not verified" is about who the
    // certificate names, not about the key exchange.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_and_the_root_cert_are_taken_out_for_the_driver() {
        let s = split("postgres://h/db?sslmode=verify-full&sslrootcert=/ca.pem&user=u");
        assert_eq!(s.url, "postgres://h/db?sslmode=require&user=u");
        assert_eq!(s.verify, Verify::Full);
        assert_eq!(s.root_cert.as_deref(), Some("/ca.pem"));
        let s = split("postgres://h/db?sslmode=require&sslrootcert=/ca.pem");
        assert_eq!(
            (s.url.as_str(), s.verify),
            ("postgres://h/db?sslmode=require", Verify::Ca),
            "require with a root certificate verifies the chain, as libpq"
        );
        let s = split("postgres://h/db?sslmode=require");
        assert_eq!(s.verify, Verify::None);
        let s = split("postgres://h/db");
        assert_eq!(
            (s.url.as_str(), s.verify),
            ("postgres://h/db", Verify::None)
        );
    }

    #[test]
    fn a_missing_root_cert_file_is_named() {
        let e = config(Verify::Ca, Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.contains("sslrootcert=/nonexistent/ca.pem"), "{e}");
    }
}
