//! 信用信息归集目录: the catalog of record categories a node accepts (R-DATA-2).
//!
//! The catalog is data, kept in the repository as `catalog/catalog.toml` and built into
//! the binary. An operator extends it with a file of the same shape: its categories are
//! added, or replace the built-in ones with the same code. Loading is strict (unknown
//! keys are errors) and checks the rules a catalog must keep, among them that no field
//! naming prohibited personal data (R-DATA-3) applies to natural persons.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::prohibited::prohibited_term;
use crate::domain::record::{Disclosure, SubjectKind};

/// The catalog shipped with the node.
const BUILTIN: &str = include_str!("../../catalog/catalog.toml");

/// Where a catalog came from, as error messages name it.
const BUILTIN_SOURCE: &str = "built-in catalog";

/// The categories a node accepts, by code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    categories: BTreeMap<String, Category>,
}

/// 信息类别: one category of record, such as 行政处罚 (administrative penalty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Lowercase snake_case, unique in the catalog; what records name in `category`.
    pub code: String,
    pub name: String,
    pub name_zh: String,
    /// The subject kinds records of this category may be about.
    pub subjects: Vec<SubjectKind>,
    pub disclosure: Disclosure,
    pub adverse: AdverseRule,
    #[serde(rename = "field", default)]
    pub fields: Vec<FieldSpec>,
}

/// Whether records of a category are 不良信息 (adverse information), which decides
/// how long a natural person's record is released (R-SEC-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdverseRule {
    /// Every record is adverse (a penalty, a dishonesty listing).
    Yes,
    /// No record is adverse (a licence, an honour).
    No,
    /// Each record says (a tax record may be in arrears or not).
    PerRecord,
}

/// One field a category's records may carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Lowercase snake_case; the key in a record's `fields`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_zh: Option<String>,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub required: bool,
    /// Only records about legal persons may carry the field.
    #[serde(default)]
    pub legal_only: bool,
    /// Longest text value in characters; text fields without it allow 2,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    /// The allowed values of an enum field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// What public release does with the field (R-REL-2); without it,
    /// [`FieldSpec::public_rule`] decides by type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<PublicRule>,
    /// Date and year-month fields: the earliest value accepted, `YYYY-MM-DD`; without it
    /// 1949-10-01 (`validate::EARLIEST_DATE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// Date and year-month fields: whether a value may lie after today (`any`: an end of
    /// validity, a publication deadline) or not (`today`, the default: something that
    /// happened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateLimit>,
    /// Integer and decimal fields: whether the value may be negative. Amounts, counts and
    /// areas may not, unless the catalog says so.
    #[serde(default)]
    pub allow_negative: bool,
}

/// What public release (R-REL-2) does with a field of a released record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicRule {
    /// Released as held.
    Released,
    /// Released with the identifiers in it masked (`policy::mask`): resident ids,
    /// mobiles, bank cards, sole traders' codes always; for a natural person also any
    /// USCC-shaped token and the subject's name.
    Masked,
    /// Left out of public answers.
    Withheld,
}

/// The latest value a date field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateLimit {
    /// Not after the node's today (the current month for a year-month).
    Today,
    /// Any real date.
    Any,
}

/// The type of a field's value; every value travels as text and is checked against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Free text without control characters except newline and tab.
    Text,
    /// `YYYY-MM-DD`, a real calendar date.
    Date,
    /// `YYYY-MM`.
    YearMonth,
    /// A signed 64-bit integer.
    Integer,
    /// Optional sign, digits, and up to six decimals (`12.5`, `-0.000001`).
    Decimal,
    /// `true` or `false`.
    Bool,
    /// A Unified Social Credit Code.
    Uscc,
    /// A resident identity number.
    ResidentId,
    /// One of the field's `values`.
    Enum,
}

/// Why a catalog was refused. Every message names the source (the file, or
/// "built-in catalog"), and the category and field where there is one.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{source_name}: cannot read: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error("{source_name}: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: category \"{code}\" is defined twice")]
    DuplicateCategory { source_name: String, code: String },
    #[error("{source_name}: category code \"{code}\" must be lowercase snake_case ASCII")]
    BadCode { source_name: String, code: String },
    #[error("{source_name}: category \"{code}\" has no subjects")]
    NoSubjects { source_name: String, code: String },
    #[error("{source_name}: category \"{code}\", field \"{field}\": {problem}")]
    Field {
        source_name: String,
        code: String,
        field: String,
        problem: String,
    },
}

impl Catalog {
    /// The catalog built into the node (`catalog/catalog.toml`).
    pub fn builtin() -> Result<Catalog, CatalogError> {
        parse(BUILTIN, BUILTIN_SOURCE)
    }

    /// The built-in catalog, extended by the operator's file if there is one: its
    /// categories are added, or replace the built-in category with the same code.
    pub fn load(extra: Option<&Path>) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::builtin()?;
        if let Some(path) = extra {
            let source_name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|error| CatalogError::Read {
                source_name: source_name.clone(),
                error,
            })?;
            let extra = parse(&text, &source_name)?;
            catalog.categories.extend(extra.categories);
        }
        Ok(catalog)
    }

    /// A complete catalog from TOML text of the catalog file's shape.
    pub fn from_toml_str(s: &str) -> Result<Catalog, CatalogError> {
        parse(s, "catalog text")
    }

    pub fn get(&self, code: &str) -> Option<&Category> {
        self.categories.get(code)
    }

    /// All categories, in code order.
    pub fn categories(&self) -> impl Iterator<Item = &Category> {
        self.categories.values()
    }
}

impl Category {
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether records of this category may be about subjects of `kind`.
    pub fn allows(&self, kind: SubjectKind) -> bool {
        self.subjects.contains(&kind)
    }
}

impl FieldSpec {
    /// Whether the field applies to records about subjects of `kind`.
    pub fn applies_to(&self, kind: SubjectKind) -> bool {
        !self.legal_only || kind == SubjectKind::Legal
    }

    /// What public release does with the field: the catalog's `public`, else by type:
    /// free text masked, a resident id withheld, a USCC masked (it may be a sole
    /// trader's), dates, numbers, flags and enum values released.
    pub fn public_rule(&self) -> PublicRule {
        self.public.unwrap_or(match self.kind {
            FieldType::Text | FieldType::Uscc => PublicRule::Masked,
            FieldType::ResidentId => PublicRule::Withheld,
            FieldType::Date
            | FieldType::YearMonth
            | FieldType::Integer
            | FieldType::Decimal
            | FieldType::Bool
            | FieldType::Enum => PublicRule::Released,
        })
    }

    /// Whether the field is a date or a year-month, which date limits apply to.
    pub fn is_dated(&self) -> bool {
        matches!(self.kind, FieldType::Date | FieldType::YearMonth)
    }
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FieldType::Text => "text",
            FieldType::Date => "date",
            FieldType::YearMonth => "year_month",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Bool => "bool",
            FieldType::Uscc => "uscc",
            FieldType::ResidentId => "resident_id",
            FieldType::Enum => "enum",
        })
    }
}

/// The file's shape: a list of `[[category]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    category: Vec<Category>,
}

fn parse(text: &str, source_name: &str) -> Result<Catalog, CatalogError> {
    let fail = |message: String| CatalogError::Parse {
        source_name: source_name.to_string(),
        message: message.trim_end().to_string(),
    };
    // A shape error names the key path it failed at (`category[2].subjects`).
    let file: CatalogFile = toml::Deserializer::parse(text)
        .map_err(|e| fail(e.to_string()))
        .and_then(|document| {
            serde_path_to_error::deserialize(document)
                .map_err(|e| fail(format!("key `{}`: {}", e.path(), e.inner())))
        })?;
    let mut categories = BTreeMap::new();
    for category in file.category {
        check_category(&category, source_name)?;
        if categories.contains_key(&category.code) {
            return Err(CatalogError::DuplicateCategory {
                source_name: source_name.to_string(),
                code: category.code,
            });
        }
        categories.insert(category.code.clone(), category);
    }
    Ok(Catalog { categories })
}

/// `abc`, `abc_def2`: lowercase ASCII words joined by single underscores.
fn is_snake_case(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.split('_').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn check_category(c: &Category, source_name: &str) -> Result<(), CatalogError> {
    if !is_snake_case(&c.code) {
        return Err(CatalogError::BadCode {
            source_name: source_name.to_string(),
            code: c.code.clone(),
        });
    }
    if c.subjects.is_empty() {
        return Err(CatalogError::NoSubjects {
            source_name: source_name.to_string(),
            code: c.code.clone(),
        });
    }
    for (i, f) in c.fields.iter().enumerate() {
        let problem = field_problem(c, f, &c.fields[..i]);
        if let Some(problem) = problem {
            return Err(CatalogError::Field {
                source_name: source_name.to_string(),
                code: c.code.clone(),
                field: f.name.clone(),
                problem,
            });
        }
    }
    Ok(())
}

/// What is wrong with field `f` of category `c`, given the fields before it.
fn field_problem(c: &Category, f: &FieldSpec, before: &[FieldSpec]) -> Option<String> {
    if !is_snake_case(&f.name) {
        return Some("field names must be lowercase snake_case ASCII".into());
    }
    if before.iter().any(|b| b.name == f.name) {
        return Some("the field is defined twice".into());
    }
    if f.kind == FieldType::Enum && f.values.is_empty() {
        return Some("an enum field needs a list of values".into());
    }
    if f.kind != FieldType::Enum && !f.values.is_empty() {
        return Some(format!(
            "values are only for enum fields, this is {}",
            f.kind
        ));
    }
    if f.values.iter().any(|v| v.trim() != v || v.is_empty()) {
        return Some("enum values must be non-empty and without surrounding spaces".into());
    }
    match f.max_len {
        Some(_) if f.kind != FieldType::Text => {
            return Some(format!(
                "max_len is only for text fields, this is {}",
                f.kind
            ));
        }
        Some(0) => return Some("max_len must be at least 1".into()),
        _ => {}
    }
    if (f.not_before.is_some() || f.not_after.is_some()) && !f.is_dated() {
        return Some(format!(
            "not_before and not_after are only for date and year_month fields, this is {}",
            f.kind
        ));
    }
    if let Some(floor) = &f.not_before
        && super::validate::parse_date(floor).is_none()
    {
        return Some(format!("not_before {floor:?} is not a date YYYY-MM-DD"));
    }
    if f.allow_negative && !matches!(f.kind, FieldType::Integer | FieldType::Decimal) {
        return Some(format!(
            "allow_negative is only for integer and decimal fields, this is {}",
            f.kind
        ));
    }
    if f.public_rule() == PublicRule::Released {
        if f.kind == FieldType::ResidentId {
            return Some(
                "a resident id is never released publicly; use masked or withheld (R-REL-2)".into(),
            );
        }
        if f.kind == FieldType::Text && c.allows(SubjectKind::Natural) && !f.legal_only {
            return Some(
                "free text about natural persons is not released unmasked; use masked or \
                 withheld, or mark it legal_only (R-REL-2)"
                    .into(),
            );
        }
    }
    if c.allows(SubjectKind::Natural) && !f.legal_only {
        let names = std::iter::once(f.name.as_str()).chain(f.name_zh.as_deref());
        if let Some(term) = names.filter_map(prohibited_term).next() {
            return Some(format!(
                "names prohibited personal data ({term}) in a category that allows natural \
                 persons; mark it legal_only (R-DATA-3)"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODES: [&str; 14] = [
        "registration",
        "admin_license",
        "admin_penalty",
        "tax",
        "social_insurance",
        "housing_fund",
        "logistics",
        "intellectual_property",
        "water",
        "power",
        "gas",
        "court_judgment",
        "dishonest_list",
        "honor_list",
    ];

    const ONE: &str = r#"
[[category]]
code = "demo"
name = "Demo"
name_zh = "示例"
subjects = ["legal", "natural"]
disclosure = "public"
adverse = "no"
[[category.field]]
name = "note"
type = "text"
"#;

    fn err(text: &str) -> String {
        Catalog::from_toml_str(text).unwrap_err().to_string()
    }

    #[test]
    fn r_data_2_builtin_catalog_has_the_required_categories() {
        let catalog = Catalog::builtin().unwrap();
        for code in CODES {
            assert!(catalog.get(code).is_some(), "{code}");
        }
        let codes: Vec<&str> = catalog.categories().map(|c| c.code.as_str()).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(codes, sorted, "categories come in code order");
        let reg = catalog.get("registration").unwrap();
        assert!(reg.allows(SubjectKind::Legal) && !reg.allows(SubjectKind::Natural));
        let penalty = catalog.get("admin_penalty").unwrap();
        assert_eq!(penalty.adverse, AdverseRule::Yes);
        assert_eq!(penalty.disclosure, Disclosure::Public);
        for name in ["decision_no", "penalty_type", "decided_on", "authority"] {
            assert!(penalty.field(name).unwrap().required, "{name}");
        }
        let tax = catalog.get("tax").unwrap();
        assert_eq!(tax.disclosure, Disclosure::Consent);
        assert!(tax.field("tax_amount").unwrap().legal_only);
    }

    #[test]
    fn r_data_3_builtin_catalog_has_no_prohibited_field_for_natural_persons() {
        let catalog = Catalog::builtin().unwrap();
        for c in catalog
            .categories()
            .filter(|c| c.allows(SubjectKind::Natural))
        {
            for f in c.fields.iter().filter(|f| !f.legal_only) {
                assert_eq!(prohibited_term(&f.name), None, "{}.{}", c.code, f.name);
            }
        }
    }

    #[test]
    fn load_without_extra_is_the_builtin() {
        assert_eq!(Catalog::load(None).unwrap(), Catalog::builtin().unwrap());
    }

    #[test]
    fn an_override_file_adds_and_replaces_categories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.toml");
        let text = format!(
            "{ONE}\n{}",
            r#"
[[category]]
code = "water"
name = "Water supply (local)"
name_zh = "供水"
subjects = ["legal"]
disclosure = "statutory"
adverse = "per_record"
"#
        );
        std::fs::write(&path, text).unwrap();
        let catalog = Catalog::load(Some(&path)).unwrap();
        assert_eq!(catalog.categories().count(), CODES.len() + 1);
        assert_eq!(catalog.get("demo").unwrap().fields[0].name, "note");
        let water = catalog.get("water").unwrap();
        assert_eq!(water.name, "Water supply (local)");
        assert!(water.fields.is_empty());
        assert!(!water.allows(SubjectKind::Natural));
        assert!(catalog.get("power").is_some(), "others stay");
    }

    #[test]
    fn a_missing_or_broken_override_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let msg = Catalog::load(Some(&missing)).unwrap_err().to_string();
        assert!(
            msg.contains("missing.toml") && msg.contains("cannot read"),
            "{msg}"
        );

        let broken = dir.path().join("broken.toml");
        std::fs::write(
            &broken,
            ONE.replace("disclosure = \"public\"", "disclosure = \"open\""),
        )
        .unwrap();
        let msg = Catalog::load(Some(&broken)).unwrap_err().to_string();
        assert!(msg.starts_with(&broken.display().to_string()), "{msg}");
        assert!(msg.contains("open"), "{msg}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let msg = err(&ONE.replace("type = \"text\"", "type = \"text\"\nmandatory = true"));
        assert!(msg.starts_with("catalog text: "), "{msg}");
        assert!(msg.contains("mandatory"), "{msg}");
        assert!(
            msg.contains("key `category[0].field[0].mandatory`"),
            "{msg}"
        );
        assert!(err("[[categories]]\ncode = \"x\"").contains("categories"));
    }

    #[test]
    fn a_wrong_type_names_its_key_path() {
        let msg = err(&ONE.replace("[\"legal\", \"natural\"]", "[\"legal\", 3]"));
        assert!(msg.contains("key `category[0].subjects[1]`"), "{msg}");
        let msg = err(&ONE.replace("type = \"text\"", "type = 1"));
        assert!(msg.contains("key `category[0].field[0].type`"), "{msg}");
    }

    #[test]
    fn duplicate_codes_are_refused() {
        assert_eq!(
            err(&format!("{ONE}{ONE}")),
            "catalog text: category \"demo\" is defined twice"
        );
    }

    #[test]
    fn codes_and_field_names_must_be_snake_case() {
        for bad in [
            "Demo", "demo-x", "_demo", "demo__x", "demo_", "1demo", "démo", "",
        ] {
            let msg = err(&ONE.replace("code = \"demo\"", &format!("code = \"{bad}\"")));
            assert!(msg.contains("lowercase snake_case"), "{bad}: {msg}");
        }
        assert_eq!(
            err(&ONE.replace("name = \"note\"", "name = \"Note\"")),
            "catalog text: category \"demo\", field \"Note\": field names must be lowercase \
             snake_case ASCII"
        );
        assert!(is_snake_case("tax_credit_grade") && is_snake_case("arrears_2"));
    }

    #[test]
    fn subjects_must_not_be_empty() {
        assert_eq!(
            err(&ONE.replace("[\"legal\", \"natural\"]", "[]")),
            "catalog text: category \"demo\" has no subjects"
        );
    }

    #[test]
    fn enum_fields_need_values() {
        let msg = err(&ONE.replace("type = \"text\"", "type = \"enum\""));
        assert!(
            msg.contains("field \"note\": an enum field needs a list of values"),
            "{msg}"
        );
        let msg = err(&ONE.replace("type = \"text\"", "type = \"date\"\nvalues = [\"a\"]"));
        assert!(
            msg.contains("values are only for enum fields, this is date"),
            "{msg}"
        );
        let msg = err(&ONE.replace("type = \"text\"", "type = \"integer\"\nmax_len = 3"));
        assert!(msg.contains("max_len is only for text fields"), "{msg}");
    }

    #[test]
    fn duplicate_fields_are_refused() {
        let text = format!("{ONE}[[category.field]]\nname = \"note\"\ntype = \"date\"\n");
        assert!(err(&text).contains("field \"note\": the field is defined twice"));
    }

    #[test]
    fn r_data_3_prohibited_field_must_be_legal_only_where_natural_persons_are_allowed() {
        let text = ONE.replace("name = \"note\"", "name = \"tax_amount\"");
        assert_eq!(
            err(&text),
            "catalog text: category \"demo\", field \"tax_amount\": names prohibited personal \
             data (tax amount) in a category that allows natural persons; mark it legal_only \
             (R-DATA-3)"
        );
        // The Chinese name is checked too.
        let text = ONE.replace("type = \"text\"", "type = \"text\"\nname_zh = \"月收入\"");
        assert!(err(&text).contains("(income)"));
        // Legal-only field, or a category for legal persons only: accepted.
        let legal_only = text.replace("type = \"text\"", "type = \"text\"\nlegal_only = true");
        assert!(Catalog::from_toml_str(&legal_only).is_ok());
        let legal_cat = text.replace("[\"legal\", \"natural\"]", "[\"legal\"]");
        assert!(Catalog::from_toml_str(&legal_cat).is_ok());
    }

    #[test]
    fn r_rel_2_public_rules_are_checked_and_default_by_type() {
        let rule =
            |extra: &str| ONE.replace("type = \"text\"", &format!("type = \"text\"\n{extra}"));
        // Free text about natural persons is never released unmasked.
        let msg = err(&rule("public = \"released\""));
        assert!(
            msg.contains("field \"note\": free text about natural persons"),
            "{msg}"
        );
        assert!(msg.contains("R-REL-2"), "{msg}");
        assert!(Catalog::from_toml_str(&rule("public = \"released\"\nlegal_only = true")).is_ok());
        assert!(Catalog::from_toml_str(&rule("public = \"withheld\"")).is_ok());
        assert!(err(&rule("public = \"open\"")).contains("open"));
        let id = ONE.replace(
            "type = \"text\"",
            "type = \"resident_id\"\npublic = \"released\"",
        );
        assert!(err(&id).contains("a resident id is never released publicly"));

        let catalog = Catalog::builtin().unwrap();
        let penalty = catalog.get("admin_penalty").unwrap();
        let rule_of = |f: &str| penalty.field(f).unwrap().public_rule();
        assert_eq!(rule_of("facts"), PublicRule::Masked);
        assert_eq!(rule_of("decision_no"), PublicRule::Masked);
        assert_eq!(rule_of("remarks"), PublicRule::Withheld);
        assert_eq!(rule_of("fine_amount"), PublicRule::Released);
        assert_eq!(rule_of("authority_uscc"), PublicRule::Released);
        // No field of the built-in catalog releases a resident id or unmasked text
        // about a person.
        for c in catalog.categories() {
            for f in &c.fields {
                if f.kind == FieldType::ResidentId {
                    assert_ne!(
                        f.public_rule(),
                        PublicRule::Released,
                        "{}.{}",
                        c.code,
                        f.name
                    );
                }
            }
        }
    }

    #[test]
    fn r_data_4_date_limits_and_negative_amounts_are_checked() {
        let date =
            |extra: &str| ONE.replace("type = \"text\"", &format!("type = \"date\"\n{extra}"));
        assert!(
            Catalog::from_toml_str(&date("not_after = \"any\"\nnot_before = \"1900-01-01\""))
                .is_ok()
        );
        assert!(err(&date("not_before = \"1900\"")).contains("not_before \"1900\" is not a date"));
        assert!(err(&date("not_after = \"tomorrow\"")).contains("tomorrow"));
        let text = ONE.replace("type = \"text\"", "type = \"text\"\nnot_after = \"any\"");
        assert!(err(&text).contains("only for date and year_month fields"));
        let text = ONE.replace("type = \"text\"", "type = \"text\"\nallow_negative = true");
        assert!(err(&text).contains("allow_negative is only for integer and decimal"));
        let catalog = Catalog::builtin().unwrap();
        let penalty = catalog.get("admin_penalty").unwrap();
        assert_eq!(penalty.field("decided_on").unwrap().not_after, None);
        assert_eq!(
            penalty.field("publish_until").unwrap().not_after,
            Some(DateLimit::Any)
        );
        assert!(!penalty.field("fine_amount").unwrap().allow_negative);
    }

    #[test]
    fn an_empty_catalog_is_allowed() {
        assert_eq!(Catalog::from_toml_str("").unwrap().categories().count(), 0);
    }
}
