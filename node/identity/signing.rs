//! Signatures a node makes with its own certificate's key, and their checks: consents
//! (R-REL-4) and usage-log checkpoints (R-SEC-3) carry one.
//!
//! A signature travels with the signer's certificate, so any node of the federation can
//! check it with nothing but the federation CA: the certificate must name a node
//! (`credit://node/<region>/..`) of the region that claims to have signed, and be issued
//! by the CA and fit to sign when the signature was made. That second part is an X.509
//! path check by `webpki` (the one rustls runs for TLS), with the CA as the only trust
//! anchor: signatures up the path, validity at the signing time, basicConstraints (a CA
//! certificate does not sign content), and the extended key usage serverAuth when the
//! certificate lists extended key usages at all (webpki's `required_if_present`: the
//! federation gives serverAuth to node certificates only, `pki::DevCa::issue`; one with
//! no EKU extension passes this part, and the node URI still limits who signs). webpki
//! leaves the end
//! certificate's keyUsage alone, so `verify` requires digitalSignature there itself.
//! No key distribution is needed beyond what mutual TLS already has. Keys: ECDSA P-256
//! (what `credit-node pki` issues) or Ed25519.

use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};

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
    /// The value to sign does not encode.
    #[error("the content to sign does not encode: {0}")]
    Encode(String),
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
    #[error("the signer's certificate is not one to sign with: {0}")]
    Usage(&'static str),
    #[error("the signer's certificate names {found}, not a node of region {expected}")]
    Signer { expected: RegionCode, found: String },
    #[error("the signature does not match the signed content")]
    Signature,
    /// The signed value does not encode, so its signature cannot be checked.
    #[error("the signed content does not encode: {0}")]
    Encode(String),
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
    anchor: TrustAnchor<'static>,
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
        X509Certificate::from_der(&ca).map_err(|e| SignError::Cert(e.to_string()))?;
        let anchor = webpki::anchor_from_trusted_cert(&ca)
            .map_err(|e| SignError::Cert(format!("CA: {e}")))?
            .to_owned();
        Ok(SignatureVerifier { anchor })
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
        let (_, cert) =
            X509Certificate::from_der(&sig.cert).map_err(|e| VerifyError::Cert(e.to_string()))?;
        // Who first: a certificate of another role is refused as such, whatever else it lacks.
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
        let at = u64::try_from(at_ms).map_err(|_| VerifyError::Validity)?;
        let at = UnixTime::since_unix_epoch(Duration::from_millis(at));
        self.path(&CertificateDer::from(sig.cert.as_slice()), &[], at)
            .map_err(refusal)?;
        match cert.key_usage() {
            Ok(Some(ku)) if !ku.value.digital_signature() => {
                return Err(VerifyError::Usage("its keyUsage lacks digitalSignature"));
            }
            Ok(_) => {}
            Err(e) => return Err(VerifyError::Cert(e.to_string())),
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

    /// The X.509 path from `cert` through `intermediates` to the federation CA, checked
    /// at `at` (the signing time the caller holds, never the clock here). A signature
    /// carries no intermediates; tests pass some to show which rule refuses a path.
    fn path(
        &self,
        cert: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        at: UnixTime,
    ) -> Result<(), webpki::Error> {
        EndEntityCert::try_from(cert)?.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&self.anchor),
            intermediates,
            at,
            KeyUsage::server_auth(),
            None,
            None,
        )?;
        Ok(())
    }
}

/// Which check a path error fails. webpki's error is `non_exhaustive`: a kind it adds
/// later reads as a certificate that does not parse, never as a pass.
fn refusal(e: webpki::Error) -> VerifyError {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } | E::CertNotValidYet { .. } | E::InvalidCertValidity => {
            VerifyError::Validity
        }
        E::CaUsedAsEndEntity => VerifyError::Usage("it is a CA certificate"),
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => VerifyError::Usage(
            "its extended key usage lacks serverAuth, which node certificates carry",
        ),
        E::UnknownIssuer
        | E::SignatureAlgorithmMismatch
        | E::InvalidSignatureForPublicKey
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | E::EndEntityUsedAsCa
        | E::PathLenConstraintViolated
        | E::MaximumPathDepthExceeded
        | E::MaximumPathBuildCallsExceeded
        | E::MaximumSignatureChecksExceeded => VerifyError::Issuer,
        other => VerifyError::Cert(other.to_string()),
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
        let now = crate::domain::clock::Clock::system().now_ms(); // wall-clock: signing times only
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
        let now = crate::domain::clock::Clock::system().now_ms(); // wall-clock: signing times only
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

    fn sign_with(cert: &crate::identity::IssuedCert) -> Signature {
        NodeSigner::from_pem(&cert.cert_pem, &cert.key_pem)
            .unwrap()
            .sign(b"m")
            .unwrap()
    }

    #[test]
    fn a_certificate_under_a_non_ca_intermediate_is_refused() {
        use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
        let ca = DevCa::generate("test ca").unwrap();
        let verifier = SignatureVerifier::from_ca_pem(ca.cert_pem()).unwrap();
        let now = crate::domain::clock::Clock::system().now_ms(); // wall-clock: signing times only
        let node = CallerId::new(Role::Node, region("211382"), "n");
        let intermediate = |is_ca: IsCa| {
            ca.issue_edited(&CallerId::new(Role::Node, region("211382"), "mid"), |p| {
                p.is_ca = is_ca;
                p.key_usages = vec![
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::DigitalSignature,
                ];
                p.extended_key_usages = vec![];
            })
            .unwrap()
        };
        let not_ca = intermediate(IsCa::ExplicitNoCa);
        let leaf = ca.issue_via(&node, &not_ca).unwrap();
        // A signature carries its one certificate: one under any intermediate is refused.
        assert_eq!(
            verifier.verify(b"m", &sign_with(&leaf), &region("211382"), now),
            Err(VerifyError::Issuer)
        );
        // Given the intermediate, the path still fails, on its basicConstraints CA:false;
        // the same path through a CA:true intermediate holds.
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let at = UnixTime::since_unix_epoch(Duration::from_millis(now as u64));
        assert_eq!(
            verifier.path(&der(&leaf.cert_pem), &[der(&not_ca.cert_pem)], at),
            Err(webpki::Error::EndEntityUsedAsCa)
        );
        let a_ca = intermediate(IsCa::Ca(BasicConstraints::Unconstrained));
        let leaf = ca.issue_via(&node, &a_ca).unwrap();
        assert_eq!(
            verifier.path(&der(&leaf.cert_pem), &[der(&a_ca.cert_pem)], at),
            Ok(())
        );
    }

    #[test]
    fn a_certificate_not_fit_to_sign_is_refused() {
        use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
        let ca = DevCa::generate("test ca").unwrap();
        let verifier = SignatureVerifier::from_ca_pem(ca.cert_pem()).unwrap();
        let now = crate::domain::clock::Clock::system().now_ms(); // wall-clock: signing times only
        let node = CallerId::new(Role::Node, region("211382"), "n");
        let usage = |r| matches!(r, Err(VerifyError::Usage(_)));
        // A node URI on a client-only certificate (EKU clientAuth, no serverAuth).
        let client_only = ca.issue_with_extra_uris(&node, &[]).unwrap();
        assert!(usage(verifier.verify(
            b"m",
            &sign_with(&client_only),
            &region("211382"),
            now
        )));
        // keyUsage without digitalSignature.
        let no_ds = ca
            .issue_edited(&node, |p| {
                p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
            })
            .unwrap();
        assert_eq!(
            verifier.verify(b"m", &sign_with(&no_ds), &region("211382"), now),
            Err(VerifyError::Usage("its keyUsage lacks digitalSignature"))
        );
        // A CA certificate naming a node.
        let a_ca = ca
            .issue_edited(&node, |p| {
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                p.key_usages.push(KeyUsagePurpose::KeyCertSign);
            })
            .unwrap();
        assert_eq!(
            verifier.verify(b"m", &sign_with(&a_ca), &region("211382"), now),
            Err(VerifyError::Usage("it is a CA certificate"))
        );
        // The node certificate `issue` makes passes every one of these checks.
        let good = ca.issue(&node, &[]).unwrap();
        verifier
            .verify(b"m", &sign_with(&good), &region("211382"), now)
            .unwrap();
        // A time before 1970 is outside every certificate.
        assert_eq!(
            verifier.verify(b"m", &sign_with(&good), &region("211382"), -1),
            Err(VerifyError::Validity)
        );
    }
}
