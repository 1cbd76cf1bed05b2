use super::*;
use crate::domain::record::Disclosure;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 10).unwrap()
}

fn validator() -> Validator {
    Validator::new(Arc::new(Catalog::builtin().unwrap()), Vec::new())
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A penalty on a company that passes every rule.
fn penalty() -> Draft {
    Draft {
        subject_kind: Some(SubjectKind::Legal),
        subject_id: "91110000600037341L".into(),
        subject_name: "朝阳市某某建材有限公司".into(),
        category: "admin_penalty".into(),
        provider_ref: "凌市监罚决〔2024〕12号".into(),
        occurred_on: "2024-05-20".into(),
        ended_on: None,
        period: "2024-05".into(),
        adverse: Some(true),
        fields: fields(&[
            ("decision_no", "凌市监罚决〔2024〕12号"),
            ("penalty_type", "罚款"),
            ("decided_on", "2024-05-20"),
            ("authority", "凌源市市场监督管理局"),
            ("fine_amount", "0.5"),
        ]),
    }
}

/// The same penalty on a person.
fn penalty_on_person() -> Draft {
    Draft {
        subject_kind: Some(SubjectKind::Natural),
        subject_id: "211382198002290134".into(),
        subject_name: "王伟".into(),
        ..penalty()
    }
}

/// `d` moved to `category`, with `adverse` and exactly the fields `pairs`.
fn recategorised(
    mut d: Draft,
    category: &str,
    adverse: Option<bool>,
    pairs: &[(&str, &str)],
) -> Draft {
    d.category = category.into();
    d.adverse = adverse;
    d.fields = fields(pairs);
    d
}

/// A person's electricity arrears: the power category's identifying fields and `more`.
fn power_arrears_of_a_person(more: &[(&str, &str)]) -> Draft {
    let mut d = recategorised(
        penalty_on_person(),
        "power",
        Some(true),
        &[
            ("supplier", "国网朝阳供电公司"),
            ("account_no", "0099"),
            ("payment_status", "欠费"),
        ],
    );
    d.fields.extend(fields(more));
    d
}

/// A validator over a catalog of one category, `demo`, about `subjects` (a TOML array),
/// with the fields `field_list` (a TOML array of inline tables).
fn demo_validator(subjects: &str, field_list: &str) -> Validator {
    let catalog = Catalog::from_toml_str(&format!(
        r#"
[[category]]
code = "demo"
name = "Demo"
name_zh = "示例"
subjects = {subjects}
disclosure = "public"
adverse = "no"
field = {field_list}
"#
    ))
    .unwrap();
    Validator::new(Arc::new(catalog), Vec::new())
}

/// Checks with `v` a `demo` record about a company whose one field `name` holds `value`.
fn check_demo(v: &Validator, name: &str, value: &str) -> Result<Content, Violation> {
    let d = recategorised(penalty(), "demo", None, &[(name, value)]);
    v.check(&d, "p1", today())
}

fn refused(draft: &Draft) -> Violation {
    match validator().check(draft, "p1", today()) {
        Ok(content) => panic!("accepted: {content:?}"),
        Err(v) => v,
    }
}

fn assert_refused(draft: &Draft, field: &str, rule: &str) -> Violation {
    let v = refused(draft);
    assert_eq!((v.field.as_str(), v.rule), (field, rule), "{v}");
    v
}

/// `draft` is refused at `field` under `rule`, saying exactly `message`.
fn assert_refused_saying(draft: &Draft, field: &str, rule: &str, message: &str) {
    assert_eq!(assert_refused(draft, field, rule).message, message);
}

#[test]
fn a_valid_record_passes_and_is_normalised() {
    let mut d = penalty();
    d.subject_id = " 91110000600037341l ".into();
    d.subject_name = "  朝阳市某某建材有限公司 ".into();
    d.category = " admin_penalty ".into();
    d.provider_ref = " REF-1 ".into();
    d.adverse = None;
    d.fields
        .insert("authority".into(), " 凌源市市场监督管理局\t".into());
    d.fields.insert("remarks".into(), "  ".into());
    d.fields
        .insert("authority_uscc".into(), "121200004013590816".into());
    let c = validator().check(&d, "p1", today()).unwrap();
    assert_eq!(c.subject.kind, SubjectKind::Legal);
    assert_eq!(c.subject.id, "91110000600037341L");
    assert_eq!(c.subject.name, "朝阳市某某建材有限公司");
    assert_eq!(c.category, "admin_penalty");
    assert_eq!(c.provider_id, "p1");
    assert_eq!(c.provider_ref, "REF-1");
    assert_eq!(c.occurred_on, "2024-05-20");
    assert_eq!(c.ended_on, None);
    assert_eq!(c.period, "2024-05");
    assert!(c.adverse, "a penalty is adverse by the catalog");
    assert_eq!(c.disclosure, Disclosure::Public);
    assert_eq!(c.fields["authority"], "凌源市市场监督管理局");
    assert!(
        !c.fields.contains_key("remarks"),
        "blank optional field dropped"
    );
    assert_eq!(c.fields.len(), 6);
}

#[test]
fn a_record_about_a_person_passes() {
    let c = validator()
        .check(&penalty_on_person(), "p1", today())
        .unwrap();
    assert_eq!(c.subject.id, "211382198002290134");
}

#[test]
fn violations_read_field_message_rule() {
    let mut d = penalty();
    d.subject_kind = None;
    assert_eq!(
        refused(&d).to_string(),
        "subject_kind: subject kind must be stated (legal or natural) (R-DATA-1)"
    );
}

#[test]
fn the_first_failing_rule_wins() {
    let mut d = penalty();
    d.subject_kind = None;
    d.category = "nope".into();
    d.period = "bad".into();
    assert_refused(&d, "subject_kind", "R-DATA-1");
    d.subject_kind = Some(SubjectKind::Legal);
    assert_refused(&d, "category", "R-DATA-2");
}

#[test]
fn r_data_2_unknown_category() {
    let mut d = penalty();
    d.category = "nope".into();
    assert_refused_saying(&d, "category", "R-DATA-2", "unknown category \"nope\"");
    d.category = "x".repeat(10_000);
    assert!(
        refused(&d).message.len() < 300,
        "caller input is not echoed whole"
    );
}

#[test]
fn r_data_2_category_must_take_the_subject_kind() {
    let mut d = penalty_on_person();
    d.category = "registration".into();
    assert_refused_saying(
        &d,
        "category",
        "R-DATA-2",
        "category registration does not take records about natural persons",
    );
}

#[test]
fn r_data_1_wrong_check_characters_are_refused() {
    let mut d = penalty();
    d.subject_id = "91110000600037341M".into();
    let v = assert_refused(&d, "subject_id", "R-DATA-1");
    assert_eq!(
        v.message,
        "not a valid unified social credit code: check character expected L, got M"
    );
    let mut d = penalty_on_person();
    d.subject_id = "211382198002290135".into();
    let v = assert_refused(&d, "subject_id", "R-DATA-1");
    assert!(
        v.message
            .starts_with("not a valid resident identity number"),
        "{v}"
    );
    // A USCC given for a person is checked as a resident id.
    d.subject_id = "91110000600037341L".into();
    assert_refused(&d, "subject_id", "R-DATA-1");
}

#[test]
fn r_data_1_legacy_codes_pass_without_the_check() {
    let pilot = "91350100M0001TGQXM";
    let mut d = penalty();
    d.subject_id = pilot.to_lowercase();
    assert_refused(&d, "subject_id", "R-DATA-1");
    let catalog = Arc::new(Catalog::builtin().unwrap());
    let v = Validator::new(catalog, vec![format!(" {} ", pilot.to_lowercase())]);
    let c = v.check(&d, "p1", today()).unwrap();
    assert_eq!(c.subject.id, pilot);
}

#[test]
fn r_data_1_subject_name() {
    for bad in ["", "   ", "名\u{7}字"] {
        let mut d = penalty();
        d.subject_name = bad.into();
        assert_refused(&d, "subject_name", "R-DATA-1");
    }
    let mut d = penalty();
    d.subject_name = "公".repeat(200);
    assert!(validator().check(&d, "p1", today()).is_ok());
    d.subject_name = "公".repeat(201);
    assert_refused_saying(
        &d,
        "subject_name",
        "R-DATA-1",
        "subject name is 201 characters, at most 200 allowed",
    );
}

#[test]
fn r_data_4_provider_ref() {
    for bad in [String::new(), " ".into(), "a\nb".into(), "r".repeat(129)] {
        let mut d = penalty();
        d.provider_ref = bad;
        assert_refused(&d, "provider_ref", "R-DATA-4");
    }
}

#[test]
fn r_data_4_occurred_on() {
    for bad in [
        "",
        "2024-02-30",
        "2024-5-01",
        "2024/05/01",
        "20240501",
        "2024-05-01T00",
    ] {
        let mut d = penalty();
        d.occurred_on = bad.into();
        let v = assert_refused(&d, "occurred_on", "R-DATA-4");
        assert_eq!(v.message, "must be a calendar date YYYY-MM-DD", "{bad}");
    }
    let mut d = penalty();
    d.occurred_on = "2024-06-11".into();
    assert_refused_saying(
        &d,
        "occurred_on",
        "R-DATA-4",
        "2024-06-11 is after today (2024-06-10)",
    );
    d.occurred_on = "2024-06-10".into();
    d.period = "2024-06".into();
    assert!(validator().check(&d, "p1", today()).is_ok());
}

#[test]
fn r_data_4_ended_on() {
    let mut d = penalty();
    d.ended_on = Some("2024-05-19".into());
    assert_refused_saying(
        &d,
        "ended_on",
        "R-DATA-4",
        "the end date is before occurred_on",
    );
    for bad in ["2024-13-01", "2024-06-11"] {
        d.ended_on = Some(bad.into());
        assert_refused(&d, "ended_on", "R-DATA-4");
    }
    d.ended_on = Some("2024-05-20".into());
    let c = validator().check(&d, "p1", today()).unwrap();
    assert_eq!(c.ended_on.as_deref(), Some("2024-05-20"));
    d.ended_on = Some(" ".into());
    assert_eq!(validator().check(&d, "p1", today()).unwrap().ended_on, None);
}

#[test]
fn r_data_5_period() {
    for bad in [
        "",
        "2024-5",
        "2024-00",
        "2024-13",
        "2024/05",
        "202405",
        "2024-05-01",
    ] {
        let mut d = penalty();
        d.period = bad.into();
        assert_refused(&d, "period", "R-DATA-5");
    }
    let mut d = penalty();
    d.period = "2024-07".into();
    assert_refused_saying(
        &d,
        "period",
        "R-DATA-5",
        "2024-07 is after the current month",
    );
    d.period = "2024-06".into();
    assert!(validator().check(&d, "p1", today()).is_ok());
}

#[test]
fn r_data_3_prohibited_field_for_a_person_is_refused_citing_the_article() {
    let mut d = penalty_on_person();
    d.fields.insert("monthly_income".into(), "5000".into());
    let v = assert_refused(&d, "fields.monthly_income", "R-DATA-3");
    assert_eq!(
        v.message,
        "\"monthly_income\" names prohibited personal data (income): Liaoning measures \
         art. 11; Liaoning regulation art. 15 as quoted in the Chaoyang notice"
    );
    let mut d = penalty_on_person();
    d.fields.insert("婚姻状况".into(), "已婚".into());
    let v = assert_refused(&d, "fields.婚姻状况", "R-DATA-3");
    assert!(v.message.contains("(marital status)"), "{v}");
}

#[test]
fn r_data_3_comes_before_every_other_field_rule() {
    // Unknown to the catalog, a required field missing, and a bad value: still R-DATA-3.
    let mut d = penalty_on_person();
    d.fields.remove("decision_no");
    d.fields.insert("fine_amount".into(), "lots".into());
    d.fields.insert("bloodType".into(), "A".into());
    assert_refused(&d, "fields.bloodType", "R-DATA-3");
    // A field the catalog has only for legal persons.
    let d = recategorised(
        penalty_on_person(),
        "tax",
        Some(false),
        &[
            ("tax_authority", "国家税务总局凌源市税务局"),
            ("tax_status", "正常"),
            ("tax_amount", "1.5"),
        ],
    );
    assert_refused(&d, "fields.tax_amount", "R-DATA-3");
}

#[test]
fn r_data_3_a_legal_only_amount_is_accepted_for_a_legal_person() {
    let d = recategorised(
        penalty(),
        "tax",
        Some(false),
        &[
            ("tax_authority", "国家税务总局凌源市税务局"),
            ("tax_status", "正常"),
            ("tax_amount", "1.5"),
            ("tax_credit_grade", "A"),
        ],
    );
    let c = validator().check(&d, "p1", today()).unwrap();
    assert_eq!(c.fields["tax_amount"], "1.5");
    assert_eq!(c.disclosure, Disclosure::Consent);
    assert!(!c.adverse);
}

#[test]
fn r_data_2_unknown_field() {
    let mut d = penalty();
    d.fields.insert("colour".into(), "red".into());
    assert_refused_saying(
        &d,
        "fields.colour",
        "R-DATA-2",
        "not in the catalog's field list for admin_penalty",
    );
}

#[test]
fn r_data_2_legal_only_field_for_a_person() {
    let mut d = penalty_on_person();
    d.fields
        .insert("legal_representative".into(), "李强".into());
    let v = assert_refused(&d, "fields.legal_representative", "R-DATA-2");
    assert!(
        v.message.contains("only records about legal persons"),
        "{v}"
    );
}

#[test]
fn r_data_2_too_many_fields() {
    let mut d = penalty();
    for i in 0..60 {
        d.fields.insert(format!("extra_{i}"), "x".into());
    }
    assert_refused_saying(
        &d,
        "fields",
        "R-DATA-2",
        "a record carries at most 64 fields, this one has 65",
    );
}

#[test]
fn r_data_2_required_fields() {
    let mut d = penalty();
    d.fields.remove("decision_no");
    assert_refused_saying(
        &d,
        "fields.decision_no",
        "R-DATA-2",
        "required field of admin_penalty is missing or blank",
    );
    let mut d = penalty();
    d.fields.insert("authority".into(), " \t".into());
    assert_refused(&d, "fields.authority", "R-DATA-2");
}

#[test]
fn r_data_2_required_legal_only_fields_are_not_asked_of_persons() {
    let v = demo_validator(
        r#"["legal", "natural"]"#,
        r#"[{ name = "legal_representative", type = "text", required = true, legal_only = true }]"#,
    );
    let d = recategorised(penalty_on_person(), "demo", None, &[]);
    assert!(v.check(&d, "p1", today()).is_ok());
    let d = recategorised(penalty(), "demo", None, &[]);
    let err = v.check(&d, "p1", today()).unwrap_err();
    assert_eq!(err.field, "fields.legal_representative");
}

/// A penalty whose one field `name` holds `value`.
fn with_field(name: &str, value: &str) -> Result<Content, Violation> {
    let mut d = penalty();
    d.fields.insert(name.into(), value.into());
    validator().check(&d, "p1", today())
}

/// A penalty whose field `name` holds `value` is refused under `rule`, naming the field.
fn field_refused(name: &str, value: &str, rule: &str) -> Violation {
    let v = with_field(name, value).unwrap_err();
    assert_eq!(
        (v.field.as_str(), v.rule),
        (format!("fields.{name}").as_str(), rule),
        "{name}={value}: {v}"
    );
    v
}

#[test]
fn r_data_2_field_types() {
    let bad = [
        ("decided_on", "2024-02-30", "date"),
        ("decided_on", "30/05/2024", "date"),
        ("fine_amount", "1e5", "decimal"),
        ("fine_amount", "1.", "decimal"),
        ("fine_amount", ".5", "decimal"),
        ("fine_amount", "0.1234567", "decimal"),
        ("fine_amount", "1,000", "decimal"),
        ("fine_amount", "1234567890123456789", "decimal"),
        ("authority_uscc", "91110000600037341M", "uscc"),
        ("suspended_license", &"证".repeat(201), "text"),
        ("facts", "a\u{0}b", "text"),
        ("facts", "a\r\nb", "text"),
    ];
    for (name, value, kind) in bad {
        let v = field_refused(name, value, "R-DATA-2");
        assert!(
            v.message
                .starts_with(&format!("not a valid {kind} value: ")),
            "{v}"
        );
    }
    for (name, value) in [
        ("fine_amount", "12"),
        ("fine_amount", "-0"),
        ("fine_amount", "+3.123456"),
        ("facts", "第一行\n第二行\t完"),
        ("suspended_license", &"证".repeat(200)),
    ] {
        assert!(with_field(name, value).is_ok(), "{name}={value}");
    }
    let c = with_field("authority_uscc", "121200004013590816").unwrap();
    assert_eq!(c.fields["authority_uscc"], "121200004013590816");
}

#[test]
fn r_data_2_more_field_types() {
    let v = demo_validator(
        r#"["legal"]"#,
        r#"[
  { name = "n", type = "integer", allow_negative = true },
  { name = "ym", type = "year_month", not_after = "any" },
  { name = "b", type = "bool" },
  { name = "rid", type = "resident_id" },
  { name = "e", type = "enum", values = ["正常", "欠费"] },
]"#,
    );
    let check = |name: &str, value: &str| check_demo(&v, name, value);
    for (name, good, bad) in [
        ("n", "-42", "4.2"),
        ("n", "99999999999999", "9223372036854775808"),
        ("n", "-99999999999999", "100000000000000"),
        ("ym", "2030-12", "2030-13"),
        ("b", "true", "yes"),
        ("b", "false", "False"),
        ("rid", "44011320141005001x", "44011320141005001Y"),
        ("e", "欠费", "欠 费"),
    ] {
        assert!(check(name, good).is_ok(), "{name}={good}");
        let err = check(name, bad).unwrap_err();
        assert_eq!(err.field, format!("fields.{name}"), "{name}={bad}");
    }
    let c = check("rid", " 44011320141005001x ").unwrap();
    assert_eq!(c.fields["rid"], "44011320141005001X");
    let err = check("e", "x").unwrap_err();
    assert_eq!(
        err.message,
        "not a valid enum value: expected one of 正常, 欠费"
    );
}

#[test]
fn r_data_2_adverse_flag() {
    let mut d = penalty();
    d.adverse = Some(false);
    let v = assert_refused(&d, "adverse", "R-DATA-2");
    assert_eq!(
        v.message,
        "every admin_penalty record is adverse; this one says it is not"
    );

    let mut d = recategorised(
        penalty(),
        "honor_list",
        Some(true),
        &[
            ("honor_name", "守合同重信用企业"),
            ("awarded_on", "2024-05-01"),
            ("authority", "凌源市人民政府"),
        ],
    );
    assert_refused(&d, "adverse", "R-DATA-2");
    d.adverse = None;
    assert!(!validator().check(&d, "p1", today()).unwrap().adverse);

    let mut d = recategorised(
        penalty(),
        "water",
        None,
        &[
            ("supplier", "凌源市自来水公司"),
            ("account_no", "0012345"),
            ("payment_status", "欠费"),
            ("arrears_amount", "326.40"),
        ],
    );
    assert_refused_saying(
        &d,
        "adverse",
        "R-DATA-2",
        "adverse must be stated for this category",
    );
    d.adverse = Some(true);
    assert!(validator().check(&d, "p1", today()).unwrap().adverse);
}

#[test]
fn r_data_3_utility_arrears_are_not_prohibited_for_persons() {
    let d = power_arrears_of_a_person(&[("arrears_amount", "88.00"), ("arrears_months", "3")]);
    assert!(validator().check(&d, "p1", today()).is_ok());
}

#[test]
fn r_data_4_dates_in_fields_are_real_past_and_not_before_1949_10_01() {
    // 9999-12-31 made a penalty public "until +10000-03-30", unrepairable.
    for (value, says) in [
        ("9999-12-31", "9999-12-31 is after today (2024-06-10)"),
        ("2024-06-11", "2024-06-11 is after today (2024-06-10)"),
        ("0000-01-01", "0000-01-01 is before 1949-10-01"),
        ("1949-09-30", "1949-09-30 is before 1949-10-01"),
    ] {
        let v = field_refused("decided_on", value, "R-DATA-4");
        assert!(v.message.starts_with(says), "{v}");
    }
    assert!(with_field("decided_on", "1949-10-01").is_ok());
    assert!(with_field("decided_on", "2024-06-10").is_ok());
    // Fields the catalog opens to the future: an end of validity, a deadline.
    assert!(with_field("valid_until", "2099-12-31").is_ok());
    assert!(with_field("publish_until", "2027-06-10").is_ok());
    let v = with_field("valid_until", "1900-01-01").unwrap_err();
    assert_eq!(v.rule, "R-DATA-4");
}

#[test]
fn r_data_4_year_months_in_fields_and_the_catalogs_own_limits() {
    let mut d = recategorised(
        penalty_on_person(),
        "social_insurance",
        Some(false),
        &[
            ("agency", "凌源市社会保险事业服务中心"),
            ("insurance_type", "养老保险"),
            ("payment_status", "正常"),
            ("paid_until", "2024-12"),
        ],
    );
    // Paid in advance: the catalog allows a future month here.
    assert!(validator().check(&d, "p1", today()).is_ok());
    d.fields.insert("paid_until".into(), "1900-01".into());
    let v = assert_refused(&d, "fields.paid_until", "R-DATA-4");
    assert!(v.message.contains("1949-10"), "{v}");

    let v = demo_validator(
        r#"["legal"]"#,
        r#"[
  { name = "founded", type = "date", not_before = "1900-01-01" },
  { name = "billed", type = "year_month" },
]"#,
    );
    let check = |name: &str, value: &str| check_demo(&v, name, value);
    assert!(check("founded", "1912-01-01").is_ok());
    assert_eq!(check("founded", "1899-12-31").unwrap_err().rule, "R-DATA-4");
    assert!(check("billed", "2024-06").is_ok());
    let e = check("billed", "2024-07").unwrap_err();
    assert_eq!((e.field.as_str(), e.rule), ("fields.billed", "R-DATA-4"));
}

#[test]
fn r_data_4_amounts_are_not_negative_unless_the_catalog_says_so() {
    for (name, value) in [("fine_amount", "-0.5"), ("confiscated_amount", "-1")] {
        let v = field_refused(name, value, "R-DATA-4");
        assert!(v.message.contains("negative"), "{}", v.message);
    }
    let d = power_arrears_of_a_person(&[("arrears_months", "-3")]);
    assert_refused(&d, "fields.arrears_months", "R-DATA-4");
}

#[test]
fn r_data_4_the_records_own_dates_are_not_before_1949_10_01() {
    let mut d = penalty();
    d.occurred_on = "0000-01-01".into();
    let v = assert_refused(&d, "occurred_on", "R-DATA-4");
    assert!(v.message.contains("before 1949-10-01"), "{v}");
    let mut d = penalty();
    d.ended_on = Some("0000-01-01".into());
    assert_refused(&d, "ended_on", "R-DATA-4");
    let mut d = penalty();
    d.period = "1900-01".into();
    let v = assert_refused(&d, "period", "R-DATA-5");
    assert!(v.message.contains("before 1949-10"), "{v}");
    d.period = "1949-10".into();
    d.occurred_on = "1949-10-01".into();
    d.fields.insert("decided_on".into(), "1949-10-01".into());
    assert!(validator().check(&d, "p1", today()).is_ok());
}

#[test]
fn r_data_4_an_id_in_an_amount_field_is_refused() {
    // A shifted CSV column: a resident id where the fine belongs.
    for value in [
        "211382198002290134",
        "211382198002290134.5",
        "-100000000000000",
    ] {
        let v = field_refused("fine_amount", value, "R-DATA-4");
        assert!(!v.message.contains("2113821980"), "{}", v.message);
    }
    assert!(with_field("fine_amount", "99999999999999.99").is_ok());
    assert!(with_field("fine_amount", "000000000000005000").is_ok());
}
