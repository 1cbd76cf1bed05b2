//! `consent`, `query` and `audit`: consents, consent-gated queries and the usage log.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use tonic::transport::Channel;

use super::client::{Target, status_error};
use super::records::record_json;
use super::{CliError, Exit, TargetArgs, local_time};
use crate::identity::signing::SignatureVerifier;
use crate::pb;
use crate::store::{Store, StoreOptions};

#[derive(Subcommand, Debug)]
pub enum ConsentCommand {
    /// Record a subject's written consent (operators). Prints the consent, and its id on
    /// the last line.
    Grant {
        /// The subject's Unified Social Credit Code or resident identity number.
        #[arg(long)]
        subject: String,
        /// The agency's identity as in its certificate: credit://agency/<region>/<id>.
        #[arg(long)]
        grantee: String,
        /// procurement, bidding, project_approval, special_funds, subsidy,
        /// investment_promotion, lending or other.
        #[arg(long)]
        purpose: String,
        /// The purpose in the subject's words, as on the paper.
        #[arg(long, default_value = "")]
        purpose_text: String,
        /// Catalog categories covered, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        categories: Vec<String>,
        /// First valid day, YYYY-MM-DD (default today); at most the node's maximum term
        /// ahead.
        #[arg(long, default_value = "")]
        from: String,
        /// Last valid day, YYYY-MM-DD; at most the node's `[consent] max_term_years`
        /// (default 5) after the first (R-REL-4).
        #[arg(long)]
        until: String,
        /// The number of the subject's signed paper.
        #[arg(long)]
        evidence: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Withdraw a consent (operators); every node holding it refuses it after one sync round.
    Withdraw {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show one consent and its state.
    Show {
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List a subject's consents held by the node.
    List {
        #[arg(long)]
        subject: String,
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BasisArg {
    /// The subject's written consent (--consent ID), agencies (R-REL-4).
    Consent,
    /// The subject itself, identity checked at a service window (operators, R-REL-3).
    #[value(name = "self")]
    OwnRecord,
    /// A government provider's statutory duty (R-REL-5).
    #[value(name = "statutory_duty")]
    StatutoryDuty,
    /// Public-class records only, identifiers masked (R-REL-2).
    Public,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScopeArg {
    /// This node's holdings.
    Local,
    /// Forwarded up to the top node, which holds everything below it.
    Federation,
}

impl ScopeArg {
    fn wire(self) -> i32 {
        match self {
            ScopeArg::Local => pb::Scope::Local as i32,
            ScopeArg::Federation => pb::Scope::Federation as i32,
        }
    }
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The subject's Unified Social Credit Code or resident identity number.
    pub subject_id: String,
    /// Why: procurement, bidding, project_approval, special_funds, subsidy,
    /// investment_promotion, lending or other (R-REL-6).
    #[arg(long)]
    pub purpose: String,
    #[arg(long, value_enum)]
    pub basis: BasisArg,
    /// The consent id (basis consent).
    #[arg(long, default_value = "")]
    pub consent: String,
    /// Categories wanted, comma-separated (default: all the basis allows).
    #[arg(long, value_delimiter = ',')]
    pub categories: Vec<String>,
    #[arg(long, value_enum, default_value = "local")]
    pub scope: ScopeArg,
    /// The law (statutory_duty) or the identity document checked (self).
    #[arg(long, default_value = "")]
    pub reference: String,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the whole usage-log chain and the signed checkpoints; name the first entry
    /// that does not match. Offline with --data-dir (the node stopped), or through a
    /// running node with --endpoint and --identity (an operator of that node; also
    /// compares the checkpoints the parent keeps). Exits 4 when something does not match
    /// or a store file is damaged (the file named), 1 on any other failure. Offline, it
    /// opens a copy of the folder, as `store check` does (sled's recovery rewrites a
    /// damaged store past the damage).
    Verify {
        /// A stopped node's data folder.
        #[arg(long, conflicts_with_all = ["endpoint", "identity"])]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        copy: super::store::CopyArgs,
        /// The federation CA (PEM), to check the checkpoints' signatures offline.
        #[arg(long, requires = "data_dir")]
        ca: Option<PathBuf>,
        #[arg(long, env = "CREDIT_NODE_ENDPOINT", requires = "identity")]
        endpoint: Option<String>,
        #[arg(long, env = "CREDIT_NODE_IDENTITY", requires = "endpoint")]
        identity: Option<PathBuf>,
    },
    /// Who used a subject's data: when, why, on what basis (operators, for the subject).
    History {
        subject_id: String,
        /// federation: also the nodes above.
        #[arg(long, value_enum, default_value = "local")]
        scope: ScopeArg,
        #[command(flatten)]
        target: TargetArgs,
    },
}

fn print_consent(out: &mut impl Write, c: &pb::Consent) -> std::io::Result<()> {
    let t = c.terms.clone().unwrap_or_default();
    writeln!(out, "consent   {}", t.id)?;
    writeln!(out, "state     {}", c.state)?;
    writeln!(out, "subject   {}", t.subject_id)?;
    writeln!(out, "grantee   {}", t.grantee)?;
    writeln!(out, "purpose   {} {}", t.purpose, t.purpose_text)?;
    writeln!(out, "covers    {}", t.categories.join(", "))?;
    writeln!(out, "valid     {} to {}", t.valid_from, t.valid_until)?;
    writeln!(out, "evidence  {}", t.evidence)?;
    writeln!(
        out,
        "recorded  by {} at node {}, {}",
        t.recorded_by,
        t.node,
        local_time(t.recorded_at_ms)
    )?;
    if let Some(w) = &c.withdrawal {
        writeln!(
            out,
            "withdrawn by {} at node {}, {}: {}",
            w.by,
            w.node,
            local_time(w.at_ms),
            w.reason
        )?;
    }
    Ok(())
}

async fn consents(
    t: &TargetArgs,
) -> Result<pb::consents_client::ConsentsClient<Channel>, CliError> {
    Ok(pb::consents_client::ConsentsClient::new(
        t.target().connect().await?,
    ))
}

pub async fn consent(command: ConsentCommand) -> Result<Exit, CliError> {
    let mut out = std::io::stdout().lock();
    match command {
        ConsentCommand::Grant {
            subject,
            grantee,
            purpose,
            purpose_text,
            categories,
            from,
            until,
            evidence,
            target,
        } => {
            let c = consents(&target)
                .await?
                .grant(pb::GrantRequest {
                    subject_id: subject,
                    grantee,
                    purpose,
                    purpose_text,
                    categories,
                    valid_from: from,
                    valid_until: until,
                    evidence,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            print_consent(&mut out, &c)?;
            // The id alone on the last line, for scripts.
            writeln!(out, "{}", c.terms.map(|t| t.id).unwrap_or_default())?;
        }
        ConsentCommand::Withdraw { id, reason, target } => {
            let c = consents(&target)
                .await?
                .withdraw(pb::WithdrawRequest { id, reason })
                .await
                .map_err(status_error)?
                .into_inner();
            print_consent(&mut out, &c)?;
        }
        ConsentCommand::Show { id, target } => {
            let c = consents(&target)
                .await?
                .get(pb::ConsentId { id })
                .await
                .map_err(status_error)?
                .into_inner();
            print_consent(&mut out, &c)?;
        }
        ConsentCommand::List { subject, target } => {
            let list = consents(&target)
                .await?
                .list(pb::ListConsentsRequest {
                    subject_id: subject,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            for c in &list.consents {
                let t = c.terms.clone().unwrap_or_default();
                writeln!(
                    out,
                    "{}  {:<9} {} {} {} to {} [{}]",
                    t.id,
                    c.state,
                    t.grantee,
                    t.purpose,
                    t.valid_from,
                    t.valid_until,
                    t.categories.join(",")
                )?;
            }
            writeln!(out, "{} consents", list.consents.len())?;
        }
    }
    Ok(Exit::Ok)
}

pub async fn query(args: QueryArgs) -> Result<Exit, CliError> {
    let basis = match args.basis {
        BasisArg::Consent => pb::LegalBasis::Consent,
        BasisArg::OwnRecord => pb::LegalBasis::Self_,
        BasisArg::StatutoryDuty => pb::LegalBasis::StatutoryDuty,
        BasisArg::Public => pb::LegalBasis::Public,
    };
    let mut client = pb::query_client::QueryClient::new(args.target.target().connect().await?)
        .max_decoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES);
    let r = client
        .query(pb::QueryRequest {
            subject_id: args.subject_id,
            purpose: args.purpose,
            basis: basis as i32,
            consent_id: args.consent,
            categories: args.categories,
            scope: args.scope.wire(),
            legal_reference: args.reference,
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut out = std::io::stdout().lock();
    for rec in &r.records {
        writeln!(out, "{}", record_json(rec))?;
    }
    // The account goes to stderr, so stdout stays JSON Lines.
    eprintln!(
        "answered by {} as of {} (via {}): {} records, {} withheld{}",
        r.answered_by,
        local_time(r.as_of_ms),
        r.path.join(" <- "),
        r.records.len(),
        r.withheld,
        if r.masked { ", identifiers masked" } else { "" }
    );
    Ok(Exit::Ok)
}

pub async fn audit(command: AuditCommand) -> Result<Exit, CliError> {
    match command {
        AuditCommand::Verify {
            data_dir: Some(dir),
            ca,
            copy,
            ..
        } => verify_offline(&dir, ca.as_deref(), &copy),
        AuditCommand::Verify {
            endpoint: Some(endpoint),
            identity: Some(identity),
            ..
        } => {
            let channel = Target { endpoint, identity }.connect().await?;
            let r = pb::audit_client::AuditClient::new(channel)
                .verify(pb::VerifyRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "usage log of {}: {} entries (last {}), head {}",
                r.node,
                r.entries,
                r.last_seq,
                hex(&r.head)
            )?;
            writeln!(
                out,
                "checkpoints checked: {} kept here, {} kept by the parent{}",
                r.checkpoints,
                r.parent_checkpoints,
                if r.parent_error.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.parent_error)
                }
            )?;
            report_findings(
                &mut out,
                r.findings.iter().map(|f| (f.seq, f.problem.as_str())),
                r.more_findings,
            )
        }
        AuditCommand::Verify { .. } => {
            Err("audit verify needs --data-dir DIR, or --endpoint and --identity".into())
        }
        AuditCommand::History {
            subject_id,
            scope,
            target: t,
        } => {
            let r = pb::audit_client::AuditClient::new(t.target().connect().await?)
                .max_decoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES)
                .history(pb::HistoryRequest {
                    subject_id,
                    scope: scope.wire(),
                    on_behalf_of: String::new(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let mut out = std::io::stdout().lock();
            for e in &r.entries {
                let who = if e.on_behalf_of.is_empty() {
                    e.caller.clone()
                } else {
                    format!("{} for {}", e.caller, e.on_behalf_of)
                };
                writeln!(
                    out,
                    "{} node {} #{}  {} {}  by {}  purpose {}  basis {}{}  {}  {}",
                    local_time(e.at_ms),
                    e.node,
                    e.seq,
                    e.action,
                    e.rpc,
                    who,
                    if e.purpose.is_empty() {
                        "-"
                    } else {
                        &e.purpose
                    },
                    if e.legal_basis.is_empty() {
                        "-"
                    } else {
                        &e.legal_basis
                    },
                    if e.consent_id.is_empty() {
                        String::new()
                    } else {
                        format!(" consent {}", e.consent_id)
                    },
                    e.outcome,
                    e.detail
                )?;
            }
            writeln!(out, "{} uses on {}", r.entries.len(), r.nodes.join(", "))?;
            for e in &r.errors {
                writeln!(out, "not answered: {e}")?;
            }
            Ok(Exit::Ok)
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn report_findings<'a>(
    out: &mut impl Write,
    findings: impl Iterator<Item = (u64, &'a str)>,
    more: u64,
) -> Result<Exit, CliError> {
    let mut any = false;
    for (seq, problem) in findings {
        if !any {
            writeln!(out, "MISMATCH: the log stops matching at entry {seq}")?;
        }
        any = true;
        writeln!(out, "  entry {seq}: {problem}")?;
    }
    if more > 0 {
        writeln!(out, "  ... and {more} more")?;
    }
    if any {
        Ok(Exit::AuditFailed)
    } else {
        writeln!(out, "OK: every entry and checkpoint matches")?;
        Ok(Exit::Ok)
    }
}

fn verify_offline(
    dir: &std::path::Path,
    ca: Option<&std::path::Path>,
    copy: &super::store::CopyArgs,
) -> Result<Exit, CliError> {
    // Another process holding the folder is named as such (`working_copy`, or with
    // --in-place the store's error).
    let (opened, _copy) = super::store::working_copy(dir, copy)?;
    let damaged = |e| super::store::damaged(dir, &opened, e);
    let store = match Store::open_bounded(&opened, &StoreOptions::default()) {
        Ok(store) => store,
        Err(e) => return damaged(e),
    };
    // A region that does not parse is a damaged store (exit 4), like any other value.
    let region = match store.region() {
        Ok(r) => r.ok_or("the store was never opened by a node, so it names no region")?,
        Err(e) => return damaged(e),
    };
    let verifier = match ca {
        Some(path) => {
            let pem =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(SignatureVerifier::from_ca_pem(&pem)?)
        }
        None => None,
    };
    let report = match store.verify_usage(&region, &[], verifier.as_ref()) {
        Ok(r) => r,
        Err(e) => return damaged(e),
    };
    // A log that came back shorter than the store's mark lost entries at a damaged page:
    // the chain of what is left still links, so only the mark shows it.
    let mark = match crate::store::read_mark(&opened) {
        Ok(m) => m,
        Err(e) => return damaged(e),
    };
    if let Some(m) = mark
        && report.last_seq < m.usage
    {
        return damaged(crate::store::StoreError::Damaged {
            file: dir.join("db").display().to_string(),
            detail: format!(
                "the usage log ends at entry {}, but it had reached {} when the store was \
                     last closed ({}): entries {} to {} are missing",
                report.last_seq,
                m.usage,
                dir.join(crate::store::MARK_FILE).display(),
                report.last_seq + 1,
                m.usage
            ),
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "usage log of {region}: {} entries (last {}), head {}",
        report.entries,
        report.last_seq,
        hex(&report.head)
    )?;
    writeln!(
        out,
        "checkpoints checked: {}{}",
        report.checkpoints,
        if verifier.is_some() {
            ", signatures included"
        } else {
            " (signatures not checked: pass --ca)"
        }
    )?;
    report_findings(
        &mut out,
        report.findings.iter().map(|f| (f.seq, f.problem.as_str())),
        report.more,
    )
}
