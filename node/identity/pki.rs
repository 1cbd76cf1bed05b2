//! Development PKI for the federation (R-NODE-3): one CA, leaf certificates whose SAN URI
//! `credit://<role>/<region>/<id>` says who holds them, and a CRL to take them back.
//!
//! It backs `credit-node pki init|issue|revoke` and, purely in memory, the tests, the demo
//! and the bench. A production deployment would use the province's CA instead; nothing
//! outside this file depends on how certificates were made, only on what they say.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::time::ASN1Time;

use crate::domain::caller::{CallerId, Role};

/// File names inside a CA directory (`pki init --out DIR`).
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const CRL_FILE: &str = "crl.pem";
/// File names inside an issued identity directory (`pki issue --out DIR`).
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

const DAY: i64 = 86_400;
/// Back-dating by a day tolerates clocks that lag between county and province machines.
const BACKDATE: i64 = DAY;
const CA_LIFETIME: i64 = 3_653 * DAY;
const LEAF_LIFETIME: i64 = 731 * DAY;
const CRL_LIFETIME: i64 = 30 * DAY;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{what}: {reason}")]
    Parse { what: String, reason: String },
    #[error("refusing to overwrite the existing CA key {}", .0.display())]
    CaExists(PathBuf),
    #[error("{}: the key does not belong to the CA certificate", .0.display())]
    KeyMismatch(PathBuf),
    #[error("R-NODE-3: {} was not issued by the CA in {}", cert.display(), ca_dir.display())]
    NotIssuedByCa { cert: PathBuf, ca_dir: PathBuf },
    #[error("{what} was not signed by this CA")]
    ForeignCrl { what: String },
    #[error("bad host name {0:?} for a node certificate")]
    BadHost(String),
    #[error("the CRL number would overflow")]
    CrlNumberOverflow,
    #[error("the system random number generator failed")]
    Random,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_err(what: impl Into<String>, reason: impl std::fmt::Display) -> PkiError {
    PkiError::Parse {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// The development CA: its certificate and the issuer (name + signing key) that signs
/// leaves and CRLs.
pub struct DevCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// How the CA's key identifier is derived, so CRLs carry an authority key identifier
    /// that matches the CA's subject key identifier also after `load`.
    key_id: KeyIdMethod,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// A leaf certificate with its private key and the CA that signed it, all PEM.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
    /// The certificate's serial number as encoded (positive, 16 bytes); what a CRL lists.
    pub serial: Vec<u8>,
}

/// What `revoke` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The serial was added and the CRL rewritten with this number.
    Revoked { serial: Vec<u8>, crl_number: u64 },
    /// The serial was already listed; nothing was written.
    AlreadyRevoked { serial: Vec<u8> },
}

impl std::fmt::Display for RevokeOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevokeOutcome::Revoked { serial, crl_number } => write!(
                f,
                "revoked serial {} (CRL number {crl_number})",
                serial_hex(serial)
            ),
            RevokeOutcome::AlreadyRevoked { serial } => {
                write!(f, "serial {} was already revoked", serial_hex(serial))
            }
        }
    }
}

/// Lower-case hex of a serial number, as `openssl x509 -serial` prints it.
pub fn serial_hex(serial: &[u8]) -> String {
    serial.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// rcgen wants `time::OffsetDateTime`; x509-parser's `ASN1Time` converts into the same
/// type, which spares the crate a direct `time` dependency.
fn asn1_at(unix: i64) -> Result<ASN1Time, PkiError> {
    ASN1Time::from_timestamp(unix).map_err(|e| parse_err("validity date", e))
}

/// A random positive serial of 16 bytes. The top bit is cleared so DER needs no sign
/// byte, and the first byte is never zero so DER does not shorten it: the bytes here are
/// exactly the bytes a parser and a CRL see.
fn random_serial() -> Result<Vec<u8>, PkiError> {
    let mut serial = vec![0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| PkiError::Random)?;
    serial[0] = (serial[0] & 0x7f).max(1);
    Ok(serial)
}

fn parse_cert<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, PkiError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| parse_err(what, e))
}

impl DevCa {
    /// A new self-signed ECDSA P-256 CA valid for ten years.
    pub fn generate(common_name: &str) -> Result<DevCa, PkiError> {
        let now = unix_now();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(SerialNumber::from(random_serial()?));
        params.not_before = asn1_at(now - BACKDATE)?.to_datetime();
        params.not_after = asn1_at(now + CA_LIFETIME)?.to_datetime();
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(DevCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_id: params.key_identifier_method.clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Reads `dir/ca.pem` and `dir/ca.key`, and checks that the key is the certificate's.
    pub fn load(dir: &Path) -> Result<DevCa, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let key_pem = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| parse_err(cert_path.display().to_string(), e))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| parse_err(key_path.display().to_string(), e))?;
        let parsed = parse_cert(&cert_der, &cert_path.display().to_string())?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(PkiError::KeyMismatch(key_path));
        }
        let key_id = parsed
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(DevCa {
            cert_pem,
            cert_der,
            issuer,
            key_id,
        })
    }

    /// Writes `ca.pem`, `ca.key` (mode 0600) and a CRL that lists nothing. Refuses to
    /// overwrite an existing `ca.key`: losing a CA key orphans every certificate it signed.
    pub fn write(&self, dir: &Path) -> Result<(), PkiError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let key_path = dir.join(CA_KEY_FILE);
        let key_pem = self.issuer.key().serialize_pem();
        match write_file(&key_path, &key_pem, Mode::PrivateNew) {
            Err(PkiError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                return Err(PkiError::CaExists(key_path));
            }
            other => other?,
        }
        write_file(&dir.join(CA_CERT_FILE), &self.cert_pem, Mode::Public)?;
        write_file(&dir.join(CRL_FILE), &self.crl_pem(&[], 1)?, Mode::Public)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Issues a certificate naming `caller` (SAN URI and CN `caller.uri()`), valid for two
    /// years. Every role may authenticate as a client; only nodes also get `ServerAuth`
    /// and the `hosts` (DNS names or IP addresses, default `localhost` and `127.0.0.1`)
    /// that clients dial. `hosts` is ignored for other roles: nobody dials a provider.
    /// A node's certificate is also the one it signs consents and checkpoints with:
    /// `signing::SignatureVerifier` wants keyUsage digitalSignature (every leaf has it)
    /// and the EKU `ServerAuth`, so only a node certificate signs.
    pub fn issue(&self, caller: &CallerId, hosts: &[String]) -> Result<IssuedCert, PkiError> {
        if caller.role != Role::Node {
            return self.leaf(caller, &[], false, &[]);
        }
        if hosts.is_empty() {
            return self.leaf(caller, &["localhost".into(), "127.0.0.1".into()], true, &[]);
        }
        self.leaf(caller, hosts, true, &[])
    }

    /// A client certificate naming `caller` and, after it, the `extra` SAN URIs. It
    /// exists for tests that prove a node refuses an ambiguous identity: a certificate
    /// with two `credit://` URIs names two parties, and the node takes neither (R-NODE-3).
    pub fn issue_with_extra_uris(
        &self,
        caller: &CallerId,
        extra: &[String],
    ) -> Result<IssuedCert, PkiError> {
        self.leaf(caller, &[], false, extra)
    }

    /// Test-only: a server certificate for any role, to prove that clients refuse to talk
    /// to a server that is not a node even when its chain and host name are fine.
    #[cfg(test)]
    pub(crate) fn issue_as_server(
        &self,
        caller: &CallerId,
        hosts: &[String],
    ) -> Result<IssuedCert, PkiError> {
        self.leaf(caller, hosts, true, &[])
    }

    /// Test-only: a node certificate as `issue` makes it, with `edit` applied to its
    /// parameters before the CA signs it (a CA flag, other key usages).
    #[cfg(test)]
    pub(crate) fn issue_edited(
        &self,
        caller: &CallerId,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Result<IssuedCert, PkiError> {
        let mut params = leaf_params(caller, &["localhost".into()], true, &[])?;
        edit(&mut params);
        self.sign_leaf(&params, &self.issuer)
    }

    /// Test-only: a node certificate as `issue` makes it, signed by the key of `via` (a
    /// certificate this CA issued) instead of the CA's, to test paths with an intermediate.
    #[cfg(test)]
    pub(crate) fn issue_via(
        &self,
        caller: &CallerId,
        via: &IssuedCert,
    ) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::from_pem(&via.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&via.cert_pem, key)?;
        let params = leaf_params(caller, &["localhost".into()], true, &[])?;
        self.sign_leaf(&params, &issuer)
    }

    fn leaf(
        &self,
        caller: &CallerId,
        hosts: &[String],
        server: bool,
        extra_uris: &[String],
    ) -> Result<IssuedCert, PkiError> {
        let params = leaf_params(caller, hosts, server, extra_uris)?;
        self.sign_leaf(&params, &self.issuer)
    }

    fn sign_leaf(
        &self,
        params: &CertificateParams,
        issuer: &Issuer<'_, KeyPair>,
    ) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, issuer)?;
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| s.as_ref().to_vec())
            .unwrap_or_default();
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
            serial,
        })
    }

    /// A CRL listing `revoked` serials (revocation time now), valid for 30 days.
    ///
    /// The node does not enforce `next_update` (rustls only does with
    /// `enforce_revocation_expiration`, which we leave off): a dev CRL that nobody
    /// re-signed for a month still revokes, rather than locking every caller out.
    pub fn crl_pem(&self, revoked: &[Vec<u8>], crl_number: u64) -> Result<String, PkiError> {
        let now = asn1_at(unix_now())?;
        let entries = revoked.iter().map(|serial| entry(serial, now)).collect();
        self.sign_crl(entries, crl_number)
    }

    fn sign_crl(
        &self,
        revoked_certs: Vec<RevokedCertParams>,
        crl_number: u64,
    ) -> Result<String, PkiError> {
        let now = unix_now();
        let crl = CertificateRevocationListParams {
            this_update: asn1_at(now)?.to_datetime(),
            next_update: asn1_at(now + CRL_LIFETIME)?.to_datetime(),
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: self.key_id.clone(),
        }
        .signed_by(&self.issuer)?;
        Ok(crl.pem()?)
    }

    /// Whether `cert` names this CA as issuer and carries its signature.
    fn signed(&self, cert: &X509Certificate<'_>) -> Result<bool, PkiError> {
        let ca = parse_cert(&self.cert_der, "CA certificate")?;
        Ok(cert.issuer().as_raw() == ca.subject().as_raw()
            && cert.verify_signature(Some(ca.public_key())).is_ok())
    }

    /// The entries and number of this CA's existing CRL(s); empty text means none yet.
    fn read_crl(&self, pem: &[u8], what: &str) -> Result<(Vec<RevokedCertParams>, u64), PkiError> {
        let ca = parse_cert(&self.cert_der, "CA certificate")?;
        let mut entries = Vec::new();
        let mut number = 0u64;
        for der in CertificateRevocationListDer::pem_slice_iter(pem) {
            let der = der.map_err(|e| parse_err(what, e))?;
            let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| parse_err(what, e))?;
            if crl.issuer().as_raw() != ca.subject().as_raw()
                || crl.verify_signature(ca.public_key()).is_err()
            {
                return Err(PkiError::ForeignCrl { what: what.into() });
            }
            if let Some(n) = crl.crl_number() {
                let bytes = n.to_bytes_be();
                if bytes.len() > 8 {
                    return Err(PkiError::CrlNumberOverflow);
                }
                number = number.max(bytes.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)));
            }
            for revoked in crl.iter_revoked_certificates() {
                // This CA never writes reason codes or invalidity dates: none to keep.
                entries.push(entry(revoked.raw_serial(), revoked.revocation_date));
            }
        }
        Ok((entries, number))
    }
}

/// A leaf's parameters: the caller's URI (then `extra_uris`) and `hosts` as SANs, a fresh
/// serial, keyUsage digitalSignature, EKU clientAuth and, for a `server`, serverAuth.
fn leaf_params(
    caller: &CallerId,
    hosts: &[String],
    server: bool,
    extra_uris: &[String],
) -> Result<CertificateParams, PkiError> {
    let now = unix_now();
    let uri = caller.uri();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, uri.as_str());
    params.subject_alt_names.push(SanType::URI(uri.try_into()?));
    for extra in extra_uris {
        params
            .subject_alt_names
            .push(SanType::URI(extra.as_str().try_into()?));
    }
    for host in hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) if !host.is_empty() && !host.contains(['/', ':', ' ']) => {
                SanType::DnsName(host.as_str().try_into()?)
            }
            Err(_) => return Err(PkiError::BadHost(host.clone())),
        };
        params.subject_alt_names.push(san);
    }
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    params.not_before = asn1_at(now - BACKDATE)?.to_datetime();
    params.not_after = asn1_at(now + LEAF_LIFETIME)?.to_datetime();
    Ok(params)
}

fn entry(serial: &[u8], revoked_at: ASN1Time) -> RevokedCertParams {
    RevokedCertParams {
        serial_number: SerialNumber::from_slice(serial),
        revocation_time: revoked_at.to_datetime(),
        reason_code: None,
        invalidity_date: None,
    }
}

impl IssuedCert {
    /// Writes `cert.pem`, `key.pem` (mode 0600) and `ca.pem`, the files
    /// `ClientIdentity::load` and the node's TLS config read.
    pub fn write(&self, dir: &Path) -> Result<(), PkiError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        write_file(&dir.join(KEY_FILE), &self.key_pem, Mode::Private)?;
        write_file(&dir.join(CERT_FILE), &self.cert_pem, Mode::Public)?;
        write_file(&dir.join(CA_CERT_FILE), &self.ca_pem, Mode::Public)
    }
}

/// `credit-node pki init --out DIR`: a new CA in `out`. Refuses when `out/ca.key` exists.
pub fn init(out: &Path) -> Result<(), PkiError> {
    let key_path = out.join(CA_KEY_FILE);
    if key_path.exists() {
        return Err(PkiError::CaExists(key_path));
    }
    DevCa::generate("credit-node development CA")?.write(out)
}

/// `credit-node pki issue --ca DIR ... --out OUT`: issues for `caller` and writes the
/// identity directory `out`.
pub fn issue(
    ca_dir: &Path,
    caller: &CallerId,
    hosts: &[String],
    out: &Path,
) -> Result<IssuedCert, PkiError> {
    let issued = DevCa::load(ca_dir)?.issue(caller, hosts)?;
    issued.write(out)?;
    Ok(issued)
}

/// `credit-node pki revoke --ca DIR CERT.pem`: adds the certificate's serial to
/// `ca_dir/crl.pem` with the next CRL number. The file is replaced atomically, so a node
/// polling it never reads half a CRL. Refuses certificates this CA did not sign.
pub fn revoke(ca_dir: &Path, cert_pem_path: &Path) -> Result<RevokeOutcome, PkiError> {
    let ca = DevCa::load(ca_dir)?;
    let what = cert_pem_path.display().to_string();
    let cert_der =
        CertificateDer::from_pem_file(cert_pem_path).map_err(|e| parse_err(what.as_str(), e))?;
    let cert = parse_cert(&cert_der, &what)?;
    if !ca.signed(&cert)? {
        return Err(PkiError::NotIssuedByCa {
            cert: cert_pem_path.to_path_buf(),
            ca_dir: ca_dir.to_path_buf(),
        });
    }
    let serial = cert.raw_serial().to_vec();

    let crl_path = ca_dir.join(CRL_FILE);
    let existing = match fs::read(&crl_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(&crl_path)(e)),
    };
    let (mut entries, number) = ca.read_crl(&existing, &crl_path.display().to_string())?;
    if entries
        .iter()
        .any(|e| e.serial_number.as_ref() == serial.as_slice())
    {
        return Ok(RevokeOutcome::AlreadyRevoked { serial });
    }
    entries.push(entry(&serial, asn1_at(unix_now())?));
    let crl_number = number.checked_add(1).ok_or(PkiError::CrlNumberOverflow)?;
    let pem = ca.sign_crl(entries, crl_number)?;

    let mut tmp = tempfile::NamedTempFile::new_in(ca_dir).map_err(io_err(ca_dir))?;
    tmp.write_all(pem.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io_err(tmp.path()))?;
    set_public(tmp.as_file(), tmp.path())?;
    tmp.persist(&crl_path)
        .map_err(|e| io_err(&crl_path)(e.error))?;
    Ok(RevokeOutcome::Revoked { serial, crl_number })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Public,
    /// Owner-only; the file may be replaced.
    Private,
    /// Owner-only; fails with `AlreadyExists` if the file is there.
    PrivateNew,
}

fn write_file(path: &Path, contents: &str, mode: Mode) -> Result<(), PkiError> {
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if mode == Mode::PrivateNew {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if mode == Mode::Public { 0o644 } else { 0o600 });
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    // `mode` only applies to new files; tighten a key file that existed with looser rights.
    #[cfg(unix)]
    if mode == Mode::Private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err(path))?;
    }
    file.write_all(contents.as_bytes()).map_err(io_err(path))
}

/// Temp files are created owner-only; the CRL is public and read by the node's user.
fn set_public(file: &fs::File, path: &Path) -> Result<(), PkiError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_err(path))?;
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::region::RegionCode;
    use x509_parser::extensions::GeneralName;

    fn caller(role: Role, id: &str) -> CallerId {
        CallerId::new(role, RegionCode::parse("211300").unwrap(), id)
    }

    fn parsed(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn node_certificate_names_the_node_and_its_hosts() {
        let ca = DevCa::generate("test CA").unwrap();
        let node = caller(Role::Node, "chaoyang");
        let issued = ca.issue(&node, &[]).unwrap();
        let der = parsed(&issued.cert_pem);
        let cert = parse_cert(&der, "leaf").unwrap();
        assert_eq!(cert.raw_serial(), issued.serial.as_slice());
        assert_eq!(issued.serial.len(), 16);
        assert!(issued.serial[0] < 0x80 && issued.serial[0] != 0);
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names = &san.value.general_names;
        assert!(names.contains(&GeneralName::URI("credit://node/211300/chaoyang")));
        assert!(names.contains(&GeneralName::DNSName("localhost")));
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && eku.server_auth);
        assert!(ca.signed(&cert).unwrap());
    }

    #[test]
    fn provider_certificate_is_client_only_and_ignores_hosts() {
        let ca = DevCa::generate("test CA").unwrap();
        let issued = ca
            .issue(&caller(Role::Provider, "tax"), &["example.org".into()])
            .unwrap();
        let der = parsed(&issued.cert_pem);
        let cert = parse_cert(&der, "leaf").unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 1);
        assert!(matches!(
            ca.issue(&caller(Role::Node, "n"), &["bad host".into()]),
            Err(PkiError::BadHost(_))
        ));
    }

    #[test]
    fn crl_lists_the_revoked_serials_with_its_number() {
        let ca = DevCa::generate("test CA").unwrap();
        let a = ca.issue(&caller(Role::Agency, "a"), &[]).unwrap();
        let b = ca.issue(&caller(Role::Agency, "b"), &[]).unwrap();
        let pem = ca
            .crl_pem(&[a.serial.clone(), b.serial.clone()], 7)
            .unwrap();
        let (entries, number) = ca.read_crl(pem.as_bytes(), "crl").unwrap();
        assert_eq!(number, 7);
        let serials: Vec<_> = entries.iter().map(|e| e.serial_number.to_bytes()).collect();
        assert_eq!(serials, vec![a.serial, b.serial]);

        let other = DevCa::generate("other CA").unwrap();
        let foreign = other.crl_pem(&[], 1).unwrap();
        assert!(matches!(
            ca.read_crl(foreign.as_bytes(), "crl"),
            Err(PkiError::ForeignCrl { .. })
        ));
    }

    #[test]
    fn a_written_ca_loads_back_and_keeps_signing() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("test CA").unwrap();
        ca.write(dir.path()).unwrap();
        let loaded = DevCa::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        let issued = loaded.issue(&caller(Role::Operator, "op"), &[]).unwrap();
        let der = parsed(&issued.cert_pem);
        assert!(ca.signed(&parse_cert(&der, "leaf").unwrap()).unwrap());
        // The empty CRL written by `write` is this CA's, number 1.
        let crl = fs::read(dir.path().join(CRL_FILE)).unwrap();
        assert_eq!(loaded.read_crl(&crl, "crl").unwrap().1, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(ca.write(dir.path()), Err(PkiError::CaExists(_))));
    }
}
