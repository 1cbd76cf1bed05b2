//! Signatures a node makes with its own certificate's key, and their checks: consents
//! (R-REL-4) and usage-log checkpoints (R-SEC-3) carry one.
//!
//! A signature travels with the signer's certificate, so any node of the federation can
//! check it with nothing but the federation CA: the certificate must be issued by the CA,
//! valid when the signature was made, and name a node (`credit://node/<region>/..`) of
//! the region that claims to have signed. No key distribution is needed beyond what
//! mutual TLS already has. Keys: ECDSA P-256 (what `credit-node pki` issues) or Ed25519.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

use super::tls::identity_uri;
use crate::domain::caller::{CallerId, Role};
use crate::domain::region::RegionCode;
use crate::domain::signature::Signature;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("node certificate: {0}")]
    Cert(String),
    #[error(
        "node key: {0} (consents and checkpoints are signed with an ECDSA P-256 or Ed25519 key)"
    )]
    Key(String),
    #[error("signing failed")]
    Sign,
}

/// Why a signature does not check out. Each names one check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the signer's certificate does not parse: {0}")]
    Cert(String),
    #[error("the signer's certificate was not issued by the federation CA")]
    Issuer,
    #[error("the signer's certificate was not valid when the signature was made")]
    Validity,
    #[error("the signer's certificate names {found}, not a node of region {expected}")]
    Signer { expected: RegionCode, found: String },
    #[error("the signature does not match the signed content")]
    Signature,
}

enum Key {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// This node's signing key and certificate.
pub struct NodeSigner {
    key: Key,
    cert: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for NodeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSigner").finish_non_exhaustive()
    }
}

impl NodeSigner {
    /// From the node's TLS certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<NodeSigner, SignError> {
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| SignError::Cert(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| SignError::Key(e.to_string()))?;
        let PrivateKeyDer::Pkcs8(pkcs8) = key else {
            return Err(SignError::Key("not a PKCS#8 key".into()));
        };
        let rng = SystemRandom::new();
        let der = pkcs8.secret_pkcs8_der();
        let key =
            match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng) {
                Ok(k) => Key::Ecdsa(k),
                Err(_) => Key::Ed25519(
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                        .map_err(|e| SignError::Key(e.to_string()))?,
                ),
            };
        let signer = NodeSigner {
            key,
            cert: cert.as_ref().to_vec(),
            rng,
        };
        // The key must be the certificate's, or every signature would fail to verify.
        let (_, parsed) =
            X509Certificate::from_der(&signer.cert).map_err(|e| SignError::Cert(e.to_string()))?;
        let public = match &signer.key {
            Key::Ecdsa(k) => k.public_key().as_ref().to_vec(),
            Key::Ed25519(k) => k.public_key().as_ref().to_vec(),
        };
        if parsed.public_key().subject_public_key.data.as_ref() != public.as_slice() {
            return Err(SignError::Key("does not belong to the certificate".into()));
        }
        Ok(signer)
    }

    /// Signs `message` (the caller puts a domain label in front of its content).
    pub fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        let signature = match &self.key {
            Key::Ecdsa(k) => k
                .sign(&self.rng, message)
                .map_err(|_| SignError::Sign)?
                .as_ref()
                .to_vec(),
            Key::Ed25519(k) => k.sign(message).as_ref().to_vec(),
        };
        Ok(Signature {
            signature,
            cert: self.cert.clone(),
        })
    }
}

/// Checks signatures against the federation CA.
pub struct SignatureVerifier {
    ca: Vec<u8>,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier").finish_non_exhaustive()
    }
}

impl SignatureVerifier {
    pub fn from_ca_pem(ca_pem: &str) -> Result<SignatureVerifier, SignError> {
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| SignError::Cert(format!("CA: {e}")))?;
        let verifier = SignatureVerifier {
            ca: ca.as_ref().to_vec(),
        };
        X509Certificate::from_der(&verifier.ca).map_err(|e| SignError::Cert(e.to_string()))?;
        Ok(verifier)
    }

    /// Checks that `sig` is a signature over `message`, made at `at_ms` (Unix ms) by a
    /// node of region `node`, with a certificate of the federation CA.
    pub fn verify(
        &self,
        message: &[u8],
        sig: &Signature,
        node: &RegionCode,
        at_ms: i64,
    ) -> Result<(), VerifyError> {
        let (_, ca) = X509Certificate::from_der(&self.ca)
            .map_err(|e| VerifyError::Cert(format!("CA: {e}")))?;
        let (_, cert) =
            X509Certificate::from_der(&sig.cert).map_err(|e| VerifyError::Cert(e.to_string()))?;
        if cert.issuer() != ca.subject() || cert.verify_signature(Some(ca.public_key())).is_err() {
            return Err(VerifyError::Issuer);
        }
        let at =
            ASN1Time::from_timestamp(at_ms.div_euclid(1000)).map_err(|_| VerifyError::Validity)?;
        if !cert.validity().is_valid_at(at) {
            return Err(VerifyError::Validity);
        }
        let who = identity_uri(&cert).unwrap_or("no identity");
        match CallerId::parse_uri(who) {
            Ok(c) if c.role == Role::Node && c.region == *node => {}
            _ => {
                return Err(VerifyError::Signer {
                    expected: *node,
                    found: who.to_string(),
                });
            }
        }
        let spki = cert.public_key();
        let key = spki.subject_public_key.data.as_ref();
        let alg: &dyn signature::VerificationAlgorithm =
            match spki.algorithm.algorithm.to_id_string().as_str() {
                OID_EC_PUBLIC_KEY => &signature::ECDSA_P256_SHA256_ASN1,
                OID_ED25519 => &signature::ED25519,
                _ => return Err(VerifyError::Signature),
            };
        UnparsedPublicKey::new(alg, key)
            .verify(message, &sig.signature)
            .map_err(|_| VerifyError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DevCa;

    fn region(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    #[test]
    fn a_node_signature_verifies_and_any_change_is_caught() {
        let ca = DevCa::generate("test ca").unwrap();
        let node = ca
            .issue(
                &CallerId::new(Role::Node, region("211382"), "lingyuan"),
                &[],
            )
            .unwrap();
        let signer = NodeSigner::from_pem(&node.cert_pem, &node.key_pem).unwrap();
        let verifier = SignatureVerifier::from_ca_pem(ca.cert_pem()).unwrap();
        let now = crate::domain::usage::now_ms(); // wall-clock: signing times only
        let sig = signer.sign(b"consent 1").unwrap();
        verifier
            .verify(b"consent 1", &sig, &region("211382"), now)
            .unwrap();
        assert_eq!(
            verifier.verify(b"consent 2", &sig, &region("211382"), now),
            Err(VerifyError::Signature)
        );
        assert!(matches!(
            verifier.verify(b"consent 1", &sig, &region("211300"), now),
            Err(VerifyError::Signer { .. })
        ));
        let mut forged = sig.clone();
        forged.signature[10] ^= 1;
        assert_eq!(
            verifier.verify(b"consent 1", &forged, &region("211382"), now),
            Err(VerifyError::Signature)
        );
        // Long before the certificate existed.
        assert_eq!(
            verifier.verify(b"consent 1", &sig, &region("211382"), 0),
            Err(VerifyError::Validity)
        );
    }

    #[test]
    fn a_certificate_of_another_ca_or_role_is_refused() {
        let ca = DevCa::generate("test ca").unwrap();
        let other = DevCa::generate("test ca").unwrap();
        let verifier = SignatureVerifier::from_ca_pem(ca.cert_pem()).unwrap();
        let now = crate::domain::usage::now_ms(); // wall-clock: signing times only
        let foreign = other
            .issue(&CallerId::new(Role::Node, region("211382"), "x"), &[])
            .unwrap();
        let sig = NodeSigner::from_pem(&foreign.cert_pem, &foreign.key_pem)
            .unwrap()
            .sign(b"m")
            .unwrap();
        assert_eq!(
            verifier.verify(b"m", &sig, &region("211382"), now),
            Err(VerifyError::Issuer)
        );
        let operator = ca
            .issue(&CallerId::new(Role::Operator, region("211382"), "ops"), &[])
            .unwrap();
        let sig = NodeSigner::from_pem(&operator.cert_pem, &operator.key_pem)
            .unwrap()
            .sign(b"m")
            .unwrap();
        assert!(matches!(
            verifier.verify(b"m", &sig, &region("211382"), now),
            Err(VerifyError::Signer { .. })
        ));
        let node = ca
            .issue(&CallerId::new(Role::Node, region("211382"), "n"), &[])
            .unwrap();
        assert!(NodeSigner::from_pem(&node.cert_pem, &operator.key_pem).is_err());
    }
}
