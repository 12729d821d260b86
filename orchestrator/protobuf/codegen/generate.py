#!/usr/bin/env python3
"""Writes src/generated.rs: protobuf-to-JSON field rules for the kinds the API server serves.

k8s-pb's prost structs carry tag numbers and Rust names but not the Go JSON names, nor
whether a Go field is a pointer (present zero is meaningful), a value with omitempty (zero
means unset) or inline. Those come from the Go types of kubernetes/api and
kubernetes/apimachinery at the tag k8s-pb was generated from; fields are matched by tag.

    python3 codegen/generate.py K8S_PB_SRC KUBERNETES_API KUBERNETES_APIMACHINERY > src/generated.rs
    cargo fmt -p slipway-protobuf

K8S_PB_SRC is the src/ of the k8s-pb crate in the cargo registry; the other two are
checkouts of tag v0.34.0 (k8s-pb 0.9 tracks Kubernetes 1.35).
"""
import os
import re
import sys

ROOTS = [
    "api::core::v1::Namespace", "api::core::v1::Pod", "api::core::v1::Binding",
    "api::core::v1::Service", "api::core::v1::Endpoints", "api::core::v1::ConfigMap",
    "api::core::v1::Secret", "api::core::v1::ResourceQuota", "api::core::v1::LimitRange",
    "api::core::v1::Node", "api::core::v1::Event", "api::core::v1::ServiceAccount",
    "api::apps::v1::Deployment", "api::apps::v1::ReplicaSet",
    "api::autoscaling::v1::Scale", "api::coordination::v1::Lease",
    "api::networking::v1::Ingress", "api::rbac::v1::Role", "api::rbac::v1::RoleBinding",
    "api::rbac::v1::ClusterRole", "api::rbac::v1::ClusterRoleBinding",
]

# Their JSON is not an object of their fields. Those the roots reach are hand-written in
# src/wellknown.rs; a new root that reaches another fails to compile until it is written.
SPECIAL = {
    "apimachinery::pkg::api::resource::Quantity": "Str",
    "apimachinery::pkg::util::intstr::IntOrString": "Int",
    "apimachinery::pkg::apis::meta::v1::Time": "Null",
    "apimachinery::pkg::apis::meta::v1::MicroTime": "Null",
    "apimachinery::pkg::apis::meta::v1::Duration": "Str",
    "apimachinery::pkg::apis::meta::v1::FieldsV1": "Null",
    "apimachinery::pkg::runtime::RawExtension": "Null",
}

SCALAR_ZERO = {"string": "Str", "bytes": "Str", "bool": "Bool"}

FIELD_RE = re.compile(r"#\[prost\((.*?)\)\]\s*pub (r#)?(\w+):\s*(.*?),\s*(?=(?:#|///|\}))", re.S)


def parse_pb(src):
    structs = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if f not in ("mod.rs", "lib.rs"):
                continue
            rel = os.path.relpath(dirpath, src)
            module = [] if rel == "." else rel.split(os.sep)
            text = open(os.path.join(dirpath, f)).read()
            for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
                fields = []
                for fm in FIELD_RE.finditer(m.group(2) + "\n}"):
                    attr, raw, name, ty = fm.groups()
                    tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
                    kind = attr.split(",")[0].split("=")[0].strip()
                    refs = []
                    for path in re.findall(r"((?:super::)*(?:\w+::)*[A-Z]\w*)", ty):
                        parts = path.split("::")
                        if parts[-1] in ("Option", "Vec", "String", "BTreeMap"):
                            continue
                        base = list(module)
                        while parts[0] == "super":
                            parts.pop(0)
                            base.pop()
                        refs.append("::".join(base + parts))
                    repeated = "repeated" in attr
                    is_map = kind == "btree_map"
                    fields.append(dict(name=(raw or "") + name, tag=tag, kind=kind,
                                       refs=refs, repeated=repeated, map=is_map))
                structs["::".join(module + [m.group(1)])] = fields
    return structs


GO_FIELD_RE = re.compile(r"^\s*(?:(\w+)\s+)?(\S+)\s+`([^`]*)`", re.M)


def parse_go(root):
    """{(go package dir, lowercased struct name): {tag: (json name, opts, pointer)}}"""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".go") or f.endswith("_test.go") or f.startswith(("zz_", "generated")):
                continue
            text = open(os.path.join(dirpath, f)).read()
            for m in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.S | re.M):
                fields = {}
                for fm in GO_FIELD_RE.finditer(m.group(2)):
                    _, gotype, tags = fm.groups()
                    pb = re.search(r'protobuf:"\w+,(\d+),', tags)
                    js = re.search(r'json:"([^"]*)"', tags)
                    if not pb or not js:
                        continue
                    jparts = js.group(1).split(",")
                    fields[int(pb.group(1))] = (jparts[0], jparts[1:], gotype.startswith("*"))
                out[(os.path.relpath(dirpath, root), m.group(1).lower())] = fields
    return out


def go_key(path):
    parts = path.split("::")
    if parts[0] == "api":
        return ("api", "/".join(parts[1:-1]), parts[-1].lower())
    return ("apimachinery", "/".join(parts[1:-1]), parts[-1].lower())


def rust_path(path):
    return "k8s_pb::" + path


def zero(field, pb):
    if field["map"]:
        return "Obj"
    if field["repeated"]:
        return "Arr"
    if field["kind"] == "message":
        return SPECIAL.get(field["refs"][0], "Obj")
    if field["kind"] in SCALAR_ZERO:
        return SCALAR_ZERO[field["kind"]]
    return "Int"


def main():
    pb = parse_pb(sys.argv[1])
    go = {"api": parse_go(sys.argv[2]), "apimachinery": parse_go(sys.argv[3])}
    todo = list(ROOTS)
    seen = set()
    used_special = set()
    order = []
    while todo:
        t = todo.pop(0)
        if t in SPECIAL:
            used_special.add(t)
            continue
        if t in seen:
            continue
        seen.add(t)
        order.append(t)
        for f in pb[t]:
            todo.extend(f["refs"])
    for t in sorted(used_special):
        print(f"uses hand-written {t}", file=sys.stderr)
    print("//! Generated by codegen/generate.py from k8s-pb 0.9 and the Go types of Kubernetes 1.35: do not edit.")
    print()
    print("use crate::json::{Json, Obj, Zero};")
    print("use crate::InvalidValue;")
    print("use serde_json::Value;")
    for t in sorted(order):
        repo, pkg, name = go_key(t)
        gofields = go[repo].get((pkg, name))
        if gofields is None:
            sys.exit(f"no Go struct for {t}")
        print()
        print(f"impl Json for {rust_path(t)} {{")
        print("    fn json(&self) -> Result<Value, InvalidValue> {")
        print("        let mut obj = Obj::default();")
        for f in sorted(pb[t], key=lambda f: f["tag"]):
            if f["tag"] not in gofields:
                sys.exit(f"no Go field for {t}.{f['name']} (tag {f['tag']})")
            jname, opts, pointer = gofields[f["tag"]]
            if jname == "-":
                continue
            acc = f"&self.{f['name']}"
            if "inline" in opts:
                print(f"        obj.inline({acc})?;")
            elif pointer:
                print(f'        obj.pointer("{jname}", {acc})?;')
            elif "omitempty" in opts:
                print(f'        obj.omit_empty("{jname}", {acc})?;')
            else:
                print(f'        obj.required("{jname}", {acc}, Zero::{zero(f, pb)})?;')
        print("        Ok(obj.into())")
        print("    }")
        print("}")


main()
