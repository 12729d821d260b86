//! The demo's GitHub: the fake GitHub (GitHub's REST paths and payload shapes, on a
//! loopback port) holding one repository, [`REPO`]. Its pull requests are kept in
//! `DIR/github.json`, so an `up` started again finds them as it left them; every other
//! repository goes to the real GitHub API.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_fake_github::{FakeGitHub, Pull};
use slipway_github::GitHub;
use slipway_platform_db::{Repo, RepoSecrets};
use slipway_previews::{Connect, RestConnect};

use crate::Error;
use crate::manifests;

/// The demo repository's owner.
pub const OWNER: &str = "slipway-demo";
/// The demo repository's name.
pub const NAME: &str = "shop";
/// The demo repository, `owner/name`.
pub const REPO: &str = "slipway-demo/shop";
/// The GitHub user the demo's token belongs to.
const BOT: &str = "slipway-demo-bot";
/// Who opens the demo's pull requests.
const AUTHOR: &str = "demo-dev";

/// What survives a restart: the credentials the squad's repository was registered with,
/// and the pull requests.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    token: String,
    webhook_secret: String,
    pulls: Vec<PullState>,
}

/// A pull request of the demo repository.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PullState {
    /// Its number.
    pub number: u64,
    /// Its head commit.
    pub head_sha: String,
    /// Whether it is open.
    pub open: bool,
}

/// A webhook delivery for the caller to send to the platform's endpoint, signed as GitHub
/// signs them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `X-GitHub-Event`.
    pub event: String,
    /// `X-GitHub-Delivery`.
    pub id: String,
    /// `X-Hub-Signature-256`: `sha256=` and the HMAC of the payload's bytes.
    pub signature: String,
    /// The body, exactly the bytes signed.
    pub payload: String,
}

/// The demo's GitHub; see the module docs.
pub struct DemoGitHub {
    fake: FakeGitHub,
    path: PathBuf,
    state: Mutex<State>,
    real: RestConnect,
}

impl std::fmt::Debug for DemoGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoGitHub")
            .field("url", &self.fake.url())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DemoGitHub {
    /// Serves the fake with what `dir` kept (or new credentials), sending every repository
    /// but the demo's to `github_api`.
    pub async fn start(dir: &Path, github_api: &str) -> Result<Arc<DemoGitHub>, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join("github.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                token: format!("ghp_{}", random_hex(18)?),
                webhook_secret: random_hex(20)?,
                pulls: Vec::new(),
            },
            Err(e) => return Err(Error::io(&path, e)),
        };
        let fake = FakeGitHub::start().await;
        fake.add_token(&state.token, BOT);
        fake.add_repo(REPO);
        put_files(&fake, "main");
        for pull in &state.pulls {
            put_files(&fake, &pull.head_sha);
            fake.open_pull(REPO, pull_of(pull));
            if !pull.open {
                fake.close_pull(REPO, pull.number, false);
            }
        }
        let demo = DemoGitHub {
            fake,
            path,
            state: Mutex::new(state),
            real: RestConnect::new(github_api),
        };
        demo.save(&demo.state())?;
        Ok(Arc::new(demo))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the state (credentials inside: only its owner may read it), atomically.
    fn save(&self, state: &State) -> Result<(), Error> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let temporary = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::State {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| file.write_all(&bytes))
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|e| Error::io(&self.path, e))
    }

    /// The token the squad's repository is registered with.
    pub fn token(&self) -> String {
        self.state().token.clone()
    }

    /// The secret deliveries are signed with.
    pub fn webhook_secret(&self) -> String {
        self.state().webhook_secret.clone()
    }

    /// The pull requests, oldest first.
    pub fn pulls(&self) -> Vec<PullState> {
        self.state().pulls.clone()
    }

    /// Opens the next pull request: its number and the `opened` delivery.
    pub fn open(&self) -> Result<(PullState, Delivery), Error> {
        let mut state = self.state();
        let number = state.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
        let pull = PullState {
            number,
            head_sha: random_hex(20)?,
            open: true,
        };
        put_files(&self.fake, &pull.head_sha);
        let payload = self.fake.open_pull(REPO, pull_of(&pull));
        state.pulls.push(pull.clone());
        self.save(&state)?;
        Ok((pull, self.delivery(&state, "pull_request", &payload)?))
    }

    /// Pushes a new commit to open pull request `number`: the `synchronize` delivery.
    pub fn push(&self, number: u64) -> Result<(PullState, Delivery), Error> {
        let mut state = self.state();
        let sha = random_hex(20)?;
        let pull = open_pull(&mut state, number)?;
        pull.head_sha.clone_from(&sha);
        let pull = pull.clone();
        put_files(&self.fake, &sha);
        let payload = self.fake.push(REPO, number, &sha);
        self.save(&state)?;
        Ok((pull, self.delivery(&state, "pull_request", &payload)?))
    }

    /// Closes open pull request `number`: the `closed` delivery.
    pub fn close(&self, number: u64) -> Result<(PullState, Delivery), Error> {
        let mut state = self.state();
        let pull = open_pull(&mut state, number)?;
        pull.open = false;
        let pull = pull.clone();
        let payload = self.fake.close_pull(REPO, number, false);
        self.save(&state)?;
        Ok((pull, self.delivery(&state, "pull_request", &payload)?))
    }

    fn delivery(&self, state: &State, event: &str, payload: &Value) -> Result<Delivery, Error> {
        let payload = payload.to_string();
        Ok(Delivery {
            event: event.to_owned(),
            id: random_hex(16)?,
            signature: slipway_github::webhook::sign(
                state.webhook_secret.as_bytes(),
                payload.as_bytes(),
            ),
            payload,
        })
    }
}

impl Connect for DemoGitHub {
    fn connect(
        &self,
        repo: &Repo,
        secrets: &RepoSecrets,
    ) -> Result<Arc<dyn GitHub>, slipway_github::Error> {
        if repo.owner == OWNER && repo.name == NAME {
            RestConnect::new(&self.fake.url()).connect(repo, secrets)
        } else {
            self.real.connect(repo, secrets)
        }
    }
}

fn open_pull(state: &mut State, number: u64) -> Result<&mut PullState, Error> {
    match state.pulls.iter_mut().find(|p| p.number == number) {
        Some(pull) if pull.open => Ok(pull),
        Some(_) => Err(Error::Closed(number)),
        None => Err(Error::NoSuchPull(number)),
    }
}

fn pull_of(pull: &PullState) -> Pull {
    Pull {
        number: pull.number,
        head_sha: pull.head_sha.clone(),
        head_ref: format!("demo-{}", pull.number),
        author: AUTHOR.to_owned(),
        fork: false,
        labels: Vec::new(),
        draft: false,
    }
}

/// The repository's files at `git_ref`: the same at every commit.
fn put_files(fake: &FakeGitHub, git_ref: &str) {
    for (path, contents) in manifests::repo_files() {
        fake.put_file(REPO, git_ref, path, contents.as_bytes());
    }
}

/// `bytes` random bytes in hex.
fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| Error::Random(e.to_string()))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pulls_and_credentials_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = DemoGitHub::start(dir.path(), "http://127.0.0.1:9")
            .await
            .unwrap();
        let (one, _) = first.open().unwrap();
        let (two, _) = first.open().unwrap();
        assert_eq!((one.number, two.number), (1, 2));
        let (pushed, delivery) = first.push(1).unwrap();
        assert_ne!(pushed.head_sha, one.head_sha);
        let payload: Value = serde_json::from_str(&delivery.payload).unwrap();
        assert_eq!(payload["action"], "synchronize");
        assert_eq!(
            payload["pull_request"]["head"]["sha"],
            pushed.head_sha.as_str()
        );
        first.close(2).unwrap();
        let (token, secret) = (first.token(), first.webhook_secret());
        drop(first);

        let again = DemoGitHub::start(dir.path(), "http://127.0.0.1:9")
            .await
            .unwrap();
        assert_eq!((again.token(), again.webhook_secret()), (token, secret));
        assert_eq!(
            again.pulls(),
            [
                PullState {
                    number: 1,
                    head_sha: pushed.head_sha.clone(),
                    open: true
                },
                PullState {
                    number: 2,
                    head_sha: two.head_sha.clone(),
                    open: false
                },
            ]
        );
        assert_eq!(again.open().unwrap().0.number, 3);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("github.json"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn only_open_pulls_take_pushes_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let demo = DemoGitHub::start(dir.path(), "http://127.0.0.1:9")
            .await
            .unwrap();
        assert!(matches!(demo.push(1), Err(Error::NoSuchPull(1))));
        demo.open().unwrap();
        demo.close(1).unwrap();
        assert!(matches!(demo.close(1), Err(Error::Closed(1))));
        assert!(matches!(demo.push(1), Err(Error::Closed(1))));
        assert_eq!(demo.pulls().len(), 1);
    }

    #[tokio::test]
    async fn a_delivery_is_signed_with_the_webhook_secret() {
        let dir = tempfile::tempdir().unwrap();
        let demo = DemoGitHub::start(dir.path(), "http://127.0.0.1:9")
            .await
            .unwrap();
        let (_, delivery) = demo.open().unwrap();
        // The platform's own check of a delivery accepts it.
        slipway_github::webhook::verify_signature(
            demo.webhook_secret().as_bytes(),
            delivery.payload.as_bytes(),
            Some(&delivery.signature),
        )
        .unwrap();
        assert!(
            slipway_github::webhook::verify_signature(
                b"another secret",
                delivery.payload.as_bytes(),
                Some(&delivery.signature),
            )
            .is_err()
        );
        assert_eq!(delivery.event, "pull_request");
    }

    #[tokio::test]
    async fn a_corrupt_state_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("github.json"), b"{not json").unwrap();
        let error = DemoGitHub::start(dir.path(), "http://127.0.0.1:9")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("github.json"), "{error}");
    }
}
