//! `slipway squad ...`: a squad's namespaces, quota, default limits, preview budget and
//! members.

use serde_json::{Map, Value, json};

use super::api::{Api, path};
use super::parse::{self, CpuMemory};
use super::table::{self, Output, text};
use super::{Target, hard};
use crate::exit::Failure;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SquadCommand {
    /// Create a squad: its namespaces, quota, default requests and limits, and preview
    /// budget.
    #[command(
        after_help = "Example:\n  slipway squad create web --namespace web-data \
        --quota requests.cpu=4 --quota limits.memory=8Gi \\\n    \
        --default-request cpu=100m,memory=128Mi --default-limit cpu=500m,memory=512Mi \\\n    \
        --max-previews 5 --preview-ttl 24h --max-preview-ttl 7d"
    )]
    Create(CreateArgs),
    /// List the squads.
    #[command(after_help = "Example:\n  slipway squad list -o json")]
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        target: Target,
    },
    /// Show a squad: members, namespaces, quota, default limits and preview budget.
    #[command(after_help = "Example:\n  slipway squad show web")]
    Show {
        #[arg(value_parser = parse::label)]
        name: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        target: Target,
    },
    /// Replace a squad's quota with exactly these limits.
    #[command(
        after_help = "Example:\n  slipway squad set-quota web requests.cpu=8 limits.memory=16Gi pods=50"
    )]
    SetQuota {
        #[arg(value_parser = parse::label)]
        name: String,
        /// A resource and its limit, as in requests.cpu=4 or count/pods=20
        #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse::quota_entry)]
        quota: Vec<(String, String)>,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a squad; one that still has namespaces in use needs --force.
    #[command(after_help = "Example:\n  slipway squad delete web --force")]
    Delete {
        #[arg(value_parser = parse::label)]
        name: String,
        /// Delete the squad's namespaces and everything in them too
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Add a user to a squad, as a member or an owner (an existing member's role is
    /// changed).
    #[command(after_help = "Example:\n  slipway squad add-member web ana --owner")]
    AddMember {
        #[arg(value_parser = parse::label)]
        name: String,
        #[arg(value_parser = parse::plain_name)]
        user: String,
        /// Owners manage the squad's members
        #[arg(long)]
        owner: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a user from a squad.
    #[command(after_help = "Example:\n  slipway squad remove-member web ana")]
    RemoveMember {
        #[arg(value_parser = parse::label)]
        name: String,
        #[arg(value_parser = parse::plain_name)]
        user: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    #[arg(value_parser = parse::label)]
    name: String,
    /// Another namespace for the squad, besides its own (repeatable)
    #[arg(long = "namespace", value_name = "NS", value_parser = parse::label)]
    namespaces: Vec<String>,
    /// A resource and its limit for the squad's namespaces together (repeatable)
    #[arg(long = "quota", value_name = "KEY=VALUE", value_parser = parse::quota_entry)]
    quota: Vec<(String, String)>,
    /// What a container requests when it says nothing
    #[arg(long, value_name = "cpu=Q,memory=Q", value_parser = parse::cpu_memory)]
    default_request: Option<CpuMemory>,
    /// A container's limits when it says nothing
    #[arg(long, value_name = "cpu=Q,memory=Q", value_parser = parse::cpu_memory)]
    default_limit: Option<CpuMemory>,
    /// How many previews may run at once
    #[arg(long, value_name = "N")]
    max_previews: Option<u32>,
    /// A resource and its limit for each preview (repeatable)
    #[arg(long = "preview-quota", value_name = "KEY=VALUE", value_parser = parse::quota_entry)]
    preview_quota: Vec<(String, String)>,
    /// How long a preview lives, as 30m, 12h, 7d or 1d12h
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    preview_ttl: Option<u64>,
    /// The longest a preview may be given
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    max_preview_ttl: Option<u64>,
    /// Previews may not be pinned past their TTL
    #[arg(long)]
    no_pinning: bool,
    #[command(flatten)]
    target: Target,
}

impl CreateArgs {
    /// The POST body: only what was given, so the server's defaults fill the rest.
    fn body(&self) -> Result<Value, Failure> {
        if let (Some(ttl), Some(max)) = (self.preview_ttl, self.max_preview_ttl)
            && ttl > max
        {
            return Err(Failure::bad_input(format!(
                "--preview-ttl {} is longer than --max-preview-ttl {}",
                parse::format_duration(ttl),
                parse::format_duration(max)
            )));
        }
        let mut body = Map::new();
        body.insert("name".into(), self.name.clone().into());
        if !self.namespaces.is_empty() {
            body.insert("namespaces".into(), json!(self.namespaces));
        }
        if !self.quota.is_empty() {
            body.insert(
                "quota".into(),
                json!({"hard": hard(&self.quota, "--quota")?}),
            );
        }
        let mut limits = Map::new();
        if let Some(request) = &self.default_request {
            limits.insert("defaultRequest".into(), request.to_json());
        }
        if let Some(limit) = &self.default_limit {
            limits.insert("default".into(), limit.to_json());
        }
        if !limits.is_empty() {
            body.insert("limits".into(), limits.into());
        }
        let mut previews = Map::new();
        if let Some(max) = self.max_previews {
            previews.insert("max".into(), max.into());
        }
        if !self.preview_quota.is_empty() {
            previews.insert(
                "quota".into(),
                json!({"hard": hard(&self.preview_quota, "--preview-quota")?}),
            );
        }
        if let Some(ttl) = self.preview_ttl {
            previews.insert("ttlSeconds".into(), ttl.into());
        }
        if let Some(max) = self.max_preview_ttl {
            previews.insert("maxTtlSeconds".into(), max.into());
        }
        if self.no_pinning {
            previews.insert("allowPinning".into(), false.into());
        }
        if !previews.is_empty() {
            body.insert("previews".into(), previews.into());
        }
        Ok(body.into())
    }
}

/// Runs one `slipway squad` command.
pub(crate) async fn run(command: SquadCommand) -> Result<(), Failure> {
    match command {
        SquadCommand::Create(args) => {
            let body = args.body()?;
            let api = Api::from_kubeconfig(args.target.kubeconfig)?;
            api.post(&path(&["squads"]), &body).await?;
            say!("squad {} created", args.name);
        }
        SquadCommand::List { output, target } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let list = api.get(&path(&["squads"])).await?;
            table::print(output, &list, |list| list_table(list, table::now()))?;
        }
        SquadCommand::Show {
            name,
            output,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let squad = api.get(&path(&["squads", &name])).await?;
            table::print(output, &squad, |squad| describe(squad, table::now()))?;
        }
        SquadCommand::SetQuota {
            name,
            quota,
            target,
        } => {
            let body = json!({"hard": hard(&quota, "the quota")?});
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            api.put(&path(&["squads", &name, "quota"]), &body).await?;
            say!("squad {name} quota set: {}", table::pairs(&body["hard"]));
        }
        SquadCommand::Delete {
            name,
            force,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let mut url = path(&["squads", &name]);
            if force {
                url.push_str("?force=true");
            }
            api.delete(&url).await?;
            say!("squad {name} deleted");
        }
        SquadCommand::AddMember {
            name,
            user,
            owner,
            target,
        } => {
            let role = if owner { "owner" } else { "member" };
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            api.post(
                &path(&["squads", &name, "members"]),
                &json!({"user": user, "role": role}),
            )
            .await?;
            say!("{user} is now {role} of squad {name}");
        }
        SquadCommand::RemoveMember { name, user, target } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            api.delete(&path(&["squads", &name, "members", &user]))
                .await?;
            say!("{user} removed from squad {name}");
        }
    }
    Ok(())
}

fn list_table(list: &Value, now: i64) -> String {
    let rows: Vec<Vec<String>> = table::items(list)
        .iter()
        .map(|squad| {
            vec![
                text(squad, "name"),
                strings(&squad["namespaces"]).join(","),
                squad["members"].as_array().map_or(0, Vec::len).to_string(),
                squad["previews"]["max"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                table::age(squad["createdAt"].as_str(), now),
            ]
        })
        .collect();
    table::render(
        &["NAME", "NAMESPACES", "MEMBERS", "MAX-PREVIEWS", "AGE"],
        &rows,
    )
}

/// A squad the way `kubectl describe` shows an object: fields, then its members and quota
/// as small tables.
fn describe(squad: &Value, now: i64) -> String {
    let none = |s: String| if s.is_empty() { "<none>".into() } else { s };
    let seconds = |v: &Value| v.as_u64().map(parse::format_duration).unwrap_or_default();
    let previews = &squad["previews"];
    let created = text(squad, "createdAt");
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        out.push_str(&format!("{:<18}{}\n", format!("{name}:"), none(value)));
    };
    field("Name", text(squad, "name"));
    field(
        "Created",
        if created.is_empty() {
            created
        } else {
            format!("{created} ({} ago)", table::age(Some(&created), now))
        },
    );
    field("Namespaces", strings(&squad["namespaces"]).join(", "));
    field(
        "Default requests",
        table::pairs(&squad["limits"]["defaultRequest"]),
    );
    field("Default limits", table::pairs(&squad["limits"]["default"]));
    field(
        "Max previews",
        previews["max"]
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_default(),
    );
    field("Preview TTL", seconds(&previews["ttlSeconds"]));
    field("Max preview TTL", seconds(&previews["maxTtlSeconds"]));
    field(
        "Pinning",
        match previews["allowPinning"].as_bool() {
            Some(true) => "allowed".into(),
            Some(false) => "not allowed".into(),
            None => String::new(),
        },
    );
    field("Preview quota", table::pairs(&previews["quota"]["hard"]));
    out.push_str("Quota:\n");
    let quota: Vec<Vec<String>> = squad["quota"]["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(resource, limit)| vec![resource.clone(), limit.as_str().unwrap_or_default().into()])
        .collect();
    out.push_str(&indented(
        &table::render(&["RESOURCE", "HARD"], &quota),
        &quota,
    ));
    out.push_str("Members:\n");
    let members: Vec<Vec<String>> = squad["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| vec![text(m, "user"), text(m, "role")])
        .collect();
    out.push_str(&indented(
        &table::render(&["USER", "ROLE"], &members),
        &members,
    ));
    out
}

/// A nested table two spaces in, or `  <none>` when it has no rows.
fn indented(rendered: &str, rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "  <none>\n".into();
    }
    rendered.lines().map(|line| format!("  {line}\n")).collect()
}

/// A JSON array of strings.
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squad() -> Value {
        json!({
            "name": "web",
            "namespaces": ["web", "web-data"],
            "quota": {"hard": {"requests.cpu": "4"}},
            "limits": {
                "default": {"cpu": "500m", "memory": "512Mi"},
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            },
            "previews": {
                "max": 5,
                "quota": {"hard": {}},
                "ttlSeconds": 86_400,
                "maxTtlSeconds": 604_800,
                "allowPinning": true,
            },
            "members": [{"user": "ana", "role": "owner"}, {"user": "bo", "role": "member"}],
            "createdAt": "1970-01-01T00:00:00Z",
        })
    }

    #[test]
    fn lists_squads_in_columns() {
        let list =
            json!({"items": [squad(), {"name": "api", "createdAt": "1970-01-01T00:00:00Z"}]});
        assert_eq!(
            list_table(&list, 3_600 * 30),
            "NAME   NAMESPACES     MEMBERS   MAX-PREVIEWS   AGE\n\
             web    web,web-data   2         5              30h\n\
             api    <none>         0         <none>         30h\n"
        );
    }

    #[test]
    fn describes_a_squad() {
        assert_eq!(
            describe(&squad(), 90),
            "Name:             web\n\
             Created:          1970-01-01T00:00:00Z (90s ago)\n\
             Namespaces:       web, web-data\n\
             Default requests: cpu=100m, memory=128Mi\n\
             Default limits:   cpu=500m, memory=512Mi\n\
             Max previews:     5\n\
             Preview TTL:      1d\n\
             Max preview TTL:  7d\n\
             Pinning:          allowed\n\
             Preview quota:    <none>\n\
             Quota:\n\
             \x20 RESOURCE       HARD\n\
             \x20 requests.cpu   4\n\
             Members:\n\
             \x20 USER   ROLE\n\
             \x20 ana    owner\n\
             \x20 bo     member\n"
        );
    }

    #[test]
    fn create_sends_only_what_was_given() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: CreateArgs,
        }
        let cli = Cli::try_parse_from([
            "x",
            "web",
            "--quota",
            "requests.cpu=4",
            "--default-request",
            "cpu=100m",
            "--preview-ttl",
            "1d12h",
            "--no-pinning",
        ])
        .unwrap();
        assert_eq!(
            cli.args.body().unwrap(),
            json!({
                "name": "web",
                "quota": {"hard": {"requests.cpu": "4"}},
                "limits": {"defaultRequest": {"cpu": "100m"}},
                "previews": {"ttlSeconds": 129_600, "allowPinning": false},
            })
        );
        let cli =
            Cli::try_parse_from(["x", "web", "--preview-ttl", "8d", "--max-preview-ttl", "7d"])
                .unwrap();
        assert_eq!(cli.args.body().unwrap_err().code(), 2);
    }
}
