//! `.slipway.yaml` and manifest substitution, as tables: what is accepted, and where and
//! why the rest is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use slipway_preview_config::{Expose, PreviewConfig, parse_duration, substitute};

const GOOD: &str = "\
preview:
  manifests:
    - deploy/app.yaml
    - deploy/db.yaml
  expose:
    service: web
    port: 8080
  ttl: 2d
  variables:
    LOG_LEVEL: debug
    REPLICAS: \"2\"
";

#[test]
fn a_good_config_reads_whole() {
    let config = PreviewConfig::parse(GOOD).unwrap();
    assert_eq!(config.manifests, ["deploy/app.yaml", "deploy/db.yaml"]);
    assert_eq!(
        config.expose,
        Expose {
            service: "web".into(),
            port: 8080
        }
    );
    assert_eq!(config.ttl, Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(config.variables["REPLICAS"], "2");
    let day = Duration::from_secs(86_400);
    assert_eq!(config.ttl_within(day, 7 * day), 2 * day);
    assert_eq!(
        config.ttl_within(day, day),
        day,
        "capped by the squad's maximum"
    );
    let minimal = PreviewConfig::parse(
        "preview:\n  manifests: [k8s.yaml]\n  expose: {service: web, port: 80}\n",
    )
    .unwrap();
    assert_eq!(minimal.ttl, None);
    assert_eq!(minimal.ttl_within(day, 7 * day), day);
}

#[test]
fn a_broken_config_says_where_and_why() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "preview:\n  manifests: [a.yaml]\n  expose: {service: web, port: 80}\n  tll: 2d\n",
            4,
            "unknown field `tll`",
        ),
        (
            "preview:\n  manifests: [a.yaml]\n  expose: {service: web, port: 80}\n  ttl: forever\n",
            4,
            "invalid duration \"forever\"",
        ),
        (
            "preview:\n  manifests: [a.yaml]\n  expose: {service: web, port: 99999}\n",
            3,
            "port",
        ),
        (
            "preview:\n  manifests: [a.yaml]\n",
            2,
            "missing field `expose`",
        ),
        (
            "preview:\n  manifests: [../secrets.yaml]\n  expose: {service: web, port: 80}\n",
            2,
            "inside the repository",
        ),
        (
            "preview:\n  manifests: []\n  expose: {service: web, port: 80}\n",
            2,
            "at least one manifest",
        ),
        (
            "preview:\n  manifests: [a.yaml]\n  expose: {service: web, port: 80}\n  variables:\n    log-level: x\n",
            5,
            "upper-case",
        ),
        (
            "preview:\n  manifests: [a.yaml]\n  expose: {service: web, port: 80}\n  variables:\n    SLIPWAY_SHA: x\n",
            5,
            "set by slipway",
        ),
        ("preview:\n  manifests: [a.yaml\n", 3, ""),
        ("", 1, ""),
    ];
    for (text, line, reason) in cases {
        let error = PreviewConfig::parse(text).expect_err(text);
        assert_eq!(error.location.file, ".slipway.yaml");
        assert_eq!(error.location.line, *line, "{text:?}: {error}");
        assert!(error.reason.contains(reason), "{text:?}: {error}");
        assert!(
            !error.reason.contains(" at line "),
            "the location is apart: {error}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!(".slipway.yaml:{line}:")),
            "{error}"
        );
    }
}

#[test]
fn manifests_get_their_variables_and_nothing_unknown() {
    let values: BTreeMap<String, String> = [
        ("SLIPWAY_PR", "42"),
        ("SLIPWAY_NAMESPACE", "pr-shop-42"),
        ("LOG_LEVEL", "debug"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let manifest = "metadata:\n  name: web-${SLIPWAY_PR}\n  namespace: ${SLIPWAY_NAMESPACE}\nenv: ${LOG_LEVEL} $HOME $${LITERAL} $\n";
    assert_eq!(
        substitute("deploy/app.yaml", manifest, &values).unwrap(),
        "metadata:\n  name: web-42\n  namespace: pr-shop-42\nenv: debug $HOME ${LITERAL} $\n"
    );
    let error = substitute(
        "deploy/app.yaml",
        "a: 1\nb: x-${LOG_LEVEL}-${NOPE}\n",
        &values,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "deploy/app.yaml:2:19: unknown variable ${NOPE}"
    );
    let error = substitute("deploy/app.yaml", "a: ${LOG_LEVEL\n", &values).unwrap_err();
    assert_eq!(error.location.line, 1);
    assert_eq!(error.location.column, 4);
    assert!(error.reason.starts_with("unclosed ${"), "{error}");
    assert_eq!(substitute("f", "", &values).unwrap(), "");
}

#[test]
fn durations_take_whole_units_largest_first() {
    for (text, seconds) in [
        ("30m", 1800),
        ("12h", 43_200),
        ("7d", 604_800),
        ("1d12h", 129_600),
        ("90s", 90),
    ] {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_secs(seconds)),
            "{text}"
        );
    }
    for bad in [
        "",
        "0h",
        "12",
        "h",
        "12h1d",
        "1h1h",
        "1.5h",
        "-1h",
        "1w",
        "99999999999999999999d",
        "1d 2h",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}
