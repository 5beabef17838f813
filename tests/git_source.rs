//! The Git source (`kompox::source::git`) against real Git servers on
//! 127.0.0.1: `git http-backend` behind a token-checking HTTP server
//! (tests/support/git_server.rs) and OpenSSH's sshd
//! (tests/support/sshd.rs); and the local-directory watcher
//! (`kompox::source::watch`) on a real directory.

#[path = "support/git_server.rs"]
mod git_server;
#[path = "support/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use git_server::{GitServer, Workdir, git};
use kompox::source::git::{GitAuth, GitError, GitSource, GitSpec};
use kompox::source::watch::DirWatcher;
use kompox::source::{FileTree, TreeLimits};
use sshd::Sshd;

fn token_spec(server: &GitServer, repo: &str, branch: &str) -> GitSpec {
    GitSpec {
        url: server.url(repo),
        branch: branch.into(),
        auth: GitAuth::Token {
            username: server.username.clone(),
            token: server.token.clone(),
        },
    }
}

/// A source with its cache in a fresh temp dir (kept alive by the caller).
fn new_source(spec: GitSpec) -> (GitSource, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let source = GitSource::new(spec, cache.path().join("cache"));
    (source, cache)
}

fn read(dir: &Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(path).display()))
}

fn files(dir: &Path) -> Vec<String> {
    let tree = FileTree::read_dir(dir, &TreeLimits::default()).unwrap();
    tree.list_under("").map(str::to_string).collect()
}

fn upload_pack_posts(server: &GitServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/git-upload-pack"))
        .count()
}

#[test]
fn clone_checks_out_the_pushed_commit() {
    let server = GitServer::start();
    let work = Workdir::new(&server.create_repo("ops"));
    work.write(".kompox/config.yml", "apps: [apps/web]\n")
        .write(
            "apps/web/compose.yml",
            "services:\n  web:\n    image: nginx\n",
        )
        .write("shared/common.env", "A=1\n")
        .write("bin/backup.sh", "#!/bin/sh\necho ok\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        work.path().join("bin/backup.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("../../shared/common.env", work.path().join("apps/web/.env"))
        .unwrap();
    let commit = work.commit("first");
    work.push("main");

    let (mut source, cache) = new_source(token_spec(&server, "ops", "main"));
    let revision = source.sync().unwrap();

    assert_eq!(revision.commit, commit);
    assert!(revision.dir.starts_with(cache.path()), "{revision:?}");
    assert_eq!(
        files(&revision.dir),
        [
            ".kompox/config.yml",
            "apps/web/.env",
            "apps/web/compose.yml",
            "bin/backup.sh",
            "shared/common.env"
        ]
    );
    assert_eq!(
        read(&revision.dir, "apps/web/compose.yml"),
        "services:\n  web:\n    image: nginx\n"
    );
    // a symlink stays a symlink (FileTree resolves it inside the tree)
    assert_eq!(
        std::fs::read_link(revision.dir.join("apps/web/.env")).unwrap(),
        PathBuf::from("../../shared/common.env")
    );
    let mode = |p: &str| {
        std::fs::metadata(revision.dir.join(p))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(mode("bin/backup.sh") & 0o111, 0o111);
    assert_eq!(mode("shared/common.env") & 0o111, 0);
    // the work tree is only files: no repository metadata to read by mistake
    assert!(!revision.dir.join(".git").exists());
    // the token was sent, and accepted
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.sent_credentials && r.status == 200),
        "{requests:#?}"
    );
}

#[test]
fn sync_fetches_only_what_is_new_and_nothing_when_unchanged() {
    let server = GitServer::start();
    let work = Workdir::new(&server.create_repo("ops"));
    for i in 0..20 {
        work.write(&format!("apps/app{i}/compose.yml"), &format!("# app {i}\n"));
    }
    work.write("old.txt", "to be removed\n");
    work.commit("twenty apps");
    work.push("main");

    let (mut source, cache) = new_source(token_spec(&server, "ops", "main"));
    let first = source.sync().unwrap();
    let clone = source.last_fetch().expect("the first sync downloads");
    // a file of ours in the cached repository: gone if it were cloned again
    let marker = cache.path().join("cache/repo.git/test-marker");
    std::fs::write(&marker, "").unwrap();

    work.write("apps/app3/compose.yml", "# app 3, changed\n")
        .remove("old.txt");
    let second_commit = work.commit("change one app");
    work.push("main");
    let second = source.sync().unwrap();

    assert_eq!(second.commit, second_commit);
    assert_eq!(second.dir, first.dir);
    assert_eq!(
        read(&second.dir, "apps/app3/compose.yml"),
        "# app 3, changed\n"
    );
    assert!(!second.dir.join("old.txt").exists());
    // incremental: the cached repository was reused and only the new
    // commit, the three trees on the changed path (/, apps, apps/app3) and
    // the changed blob came over the wire
    assert!(marker.exists());
    let fetch = source.last_fetch().expect("the second sync downloads");
    assert_eq!(
        fetch.received_objects, 5,
        "clone {clone:?}, fetch {fetch:?}"
    );
    assert!(
        fetch.received_bytes > 0 && fetch.received_bytes < clone.received_bytes,
        "clone {clone:?}, fetch {fetch:?}"
    );

    // nothing new: only the ref advertisement is asked for
    let posts = upload_pack_posts(&server);
    let third = source.sync().unwrap();
    assert_eq!(third, second);
    assert_eq!(source.last_fetch(), None);
    assert_eq!(upload_pack_posts(&server), posts);
}

#[test]
fn a_force_pushed_branch_is_followed() {
    let server = GitServer::start();
    let work = Workdir::new(&server.create_repo("ops"));
    work.write("a.yml", "a: 1\n");
    let base = work.commit("a");
    work.push("main");
    work.write("b.yml", "b: 1\n");
    let discarded = work.commit("b");
    work.push("main");

    let (mut source, _cache) = new_source(token_spec(&server, "ops", "main"));
    assert_eq!(source.sync().unwrap().commit, discarded);

    work.reset_hard(&base);
    work.write("c.yml", "c: 1\n");
    let rewritten = work.commit("c instead of b");
    work.force_push("main");

    let revision = source.sync().unwrap();
    assert_eq!(revision.commit, rewritten);
    assert_eq!(files(&revision.dir), ["a.yml", "c.yml"]);
}

#[test]
fn a_wrong_token_is_refused_once_and_never_shown() {
    let server = GitServer::start();
    let work = Workdir::new(&server.create_repo("ops"));
    work.write("a.yml", "a: 1\n");
    work.commit("a");
    work.push("main");
    let secret = "wr0ng-s3cret-t0ken";
    let mut spec = token_spec(&server, "ops", "main");
    spec.auth = GitAuth::Token {
        username: server.username.clone(),
        token: secret.into(),
    };

    let (mut source, cache) = new_source(spec);
    let error = source.sync().unwrap_err();

    assert!(matches!(error, GitError::AuthRejected { .. }), "{error:?}");
    assert!(!error.is_retryable());
    let shown = format!("{error} {error:?} {source:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains(&server.url("ops")), "{shown}");
    // one attempt with the token, no loop of retries
    let requests = server.requests();
    assert_eq!(
        requests.iter().filter(|r| r.sent_credentials).count(),
        1,
        "{requests:#?}"
    );
    assert!(requests.iter().all(|r| r.status == 401), "{requests:#?}");
    assert!(!cache.path().join("cache/worktree").exists());
}

#[test]
fn credentials_in_the_url_are_never_shown() {
    let server = GitServer::start();
    server.create_repo("ops");
    let secret = "p4ssw0rd-in-url";
    let url = format!(
        "http://{}:{secret}@127.0.0.1:{}/ops.git",
        server.username,
        server.port()
    );
    let (mut source, _cache) = new_source(GitSpec {
        url,
        branch: "main".into(),
        auth: GitAuth::None,
    });
    let error = source.sync().unwrap_err();
    assert!(matches!(error, GitError::AuthRejected { .. }), "{error:?}");
    let shown = format!("{error} {error:?} {source:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains(&server.username), "{shown}");
}

#[test]
fn a_missing_branch_or_repository_is_a_clear_error() {
    let server = GitServer::start();
    let work = Workdir::new(&server.create_repo("ops"));
    work.write("a.yml", "a: 1\n");
    work.commit("a");
    work.push("main");

    let (mut source, cache) = new_source(token_spec(&server, "ops", "release"));
    let error = source.sync().unwrap_err();
    assert!(
        matches!(error, GitError::BranchNotFound { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("{}: branch `release` not found", server.url("ops"))
    );
    assert!(!cache.path().join("cache/worktree").exists());

    let (mut source, _cache) = new_source(token_spec(&server, "nope", "main"));
    let error = source.sync().unwrap_err();
    assert!(
        matches!(error, GitError::RepositoryNotFound { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("nope.git"), "{error}");
}

#[test]
fn an_unreachable_server_is_a_retryable_network_error() {
    let port = sshd::closed_port();
    let (mut source, _cache) = new_source(GitSpec {
        url: format!("http://127.0.0.1:{port}/ops.git"),
        branch: "main".into(),
        auth: GitAuth::None,
    });
    let error = source.sync().unwrap_err();
    assert!(matches!(error, GitError::Network { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[test]
fn a_pull_request_ref_is_checked_out_beside_the_branch() {
    let server = GitServer::start();
    let work = Workdir::new(&server.create_repo("ops"));
    work.write("apps/web/compose.yml", "web: 1\n")
        .write("apps/db/compose.yml", "db: 1\n")
        .write("README.md", "ops\n");
    let base = work.commit("base");
    work.push("main");
    // the pull request: changes the web app only
    work.switch("feature", &base);
    work.write("apps/web/compose.yml", "web: 2\n")
        .write("apps/web/extra.env", "X=1\n");
    let pr_head = work.commit("web: 2");
    work.push_ref("refs/pull/1/head");
    // meanwhile main changes the db app
    work.switch("main", &base);
    work.write("apps/db/compose.yml", "db: 2\n");
    let main_head = work.commit("db: 2");
    work.push("main");

    let (mut source, cache) = new_source(token_spec(&server, "ops", "main"));
    let main = source.sync().unwrap();
    let pr = source.checkout_ref("refs/pull/1/head", "pr-1").unwrap();

    assert_eq!(main.commit, main_head);
    assert_eq!(pr.commit, pr_head);
    assert_eq!(pr.dir, cache.path().join("cache/checkouts/pr-1"));
    assert_ne!(pr.dir, main.dir);
    assert_eq!(read(&pr.dir, "apps/web/compose.yml"), "web: 2\n");
    assert_eq!(read(&pr.dir, "apps/db/compose.yml"), "db: 1\n");
    // the branch's work tree is untouched
    assert_eq!(read(&main.dir, "apps/web/compose.yml"), "web: 1\n");
    assert_eq!(read(&main.dir, "apps/db/compose.yml"), "db: 2\n");

    // what the pull request changes, not what main gained since it forked
    assert_eq!(
        source.changed_paths(&main.commit, &pr.commit).unwrap(),
        [
            PathBuf::from("apps/web/compose.yml"),
            PathBuf::from("apps/web/extra.env")
        ]
    );
    assert_eq!(
        source.changed_paths(&base, &main.commit).unwrap(),
        [PathBuf::from("apps/db/compose.yml")]
    );
    assert_eq!(
        source.changed_paths(&main.commit, &main.commit).unwrap(),
        Vec::<PathBuf>::new()
    );
    let error = source
        .changed_paths(&main.commit, "0123456789abcdef0123456789abcdef01234567")
        .unwrap_err();
    assert!(
        matches!(error, GitError::UnknownRevision { .. }),
        "{error:?}"
    );

    // the pull request is rewritten (force-pushed): the checkout follows
    work.switch("feature", &base);
    work.write("apps/web/compose.yml", "web: 3\n");
    let pr_update = work.commit("web: 3");
    work.push_ref("refs/pull/1/head");
    let pr = source.checkout_ref("refs/pull/1/head", "pr-1").unwrap();
    assert_eq!(pr.commit, pr_update);
    assert_eq!(read(&pr.dir, "apps/web/compose.yml"), "web: 3\n");
    assert!(!pr.dir.join("apps/web/extra.env").exists());

    let error = source.checkout_ref("refs/pull/2/head", "pr-2").unwrap_err();
    assert!(matches!(error, GitError::RefNotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("refs/pull/2/head"), "{error}");
    let error = source
        .checkout_ref("refs/pull/1/head", "../escape")
        .unwrap_err();
    assert!(matches!(error, GitError::Config(_)), "{error:?}");
}

#[test]
fn a_corrupt_cache_is_cloned_again() {
    let server = GitServer::start();
    let work = Workdir::new(&server.create_repo("ops"));
    work.write("a.yml", "a: 1\n");
    work.commit("a");
    work.push("main");
    let (mut source, cache) = new_source(token_spec(&server, "ops", "main"));
    source.sync().unwrap();
    let repo = cache.path().join("cache/repo.git");
    // a file of ours in the cached repository: gone once it is cloned again
    let marker = repo.join("test-marker");
    std::fs::write(&marker, "").unwrap();

    // every object lost (a disk problem, a killed gc)
    std::fs::remove_dir_all(repo.join("objects")).unwrap();
    std::fs::create_dir_all(repo.join("objects/pack")).unwrap();
    work.write("b.yml", "b: 1\n");
    let second = work.commit("b");
    work.push("main");
    let revision = source.sync().unwrap();
    assert_eq!(revision.commit, second);
    assert_eq!(files(&revision.dir), ["a.yml", "b.yml"]);
    // cloned again, not patched up
    assert!(!marker.exists());
    std::fs::write(&marker, "").unwrap();

    // an unreadable repository
    std::fs::write(repo.join("config"), "[core\nthis is not a config\n").unwrap();
    work.write("c.yml", "c: 1\n");
    let third = work.commit("c");
    work.push("main");
    let revision = source.sync().unwrap();
    assert_eq!(revision.commit, third);
    assert_eq!(files(&revision.dir), ["a.yml", "b.yml", "c.yml"]);
    assert!(!marker.exists());
}

#[test]
fn a_local_repository_needs_no_server() {
    let repos = tempfile::tempdir().unwrap();
    let bare = bare_repo(repos.path());
    let work = Workdir::new(&bare);
    work.write("a.yml", "a: 1\n");
    let commit = work.commit("a");
    work.push("main");
    for url in [
        bare.display().to_string(),
        format!("file://{}", bare.display()),
    ] {
        let (mut source, _cache) = new_source(GitSpec {
            url,
            branch: "main".into(),
            auth: GitAuth::None,
        });
        let revision = source.sync().unwrap();
        assert_eq!(revision.commit, commit);
        assert_eq!(read(&revision.dir, "a.yml"), "a: 1\n");
    }
}

/// The test server itself speaks real Git: the git CLI clones through it
/// (with a request large enough that git compresses it), and pushes land.
#[test]
fn the_test_server_serves_the_git_cli_with_compressed_requests() {
    let server = GitServer::start();
    let work = Workdir::new(&server.create_repo("ops"));
    work.write("a.yml", "a: 1\n");
    work.commit("a");
    work.push("main");
    // many refs: the CLI's fetch request then exceeds its gzip threshold
    for i in 0..40 {
        work.write("a.yml", &format!("a: {i}\n"));
        work.commit(&format!("{i}"));
        work.push(&format!("branch-{i:02}"));
    }
    let clone = tempfile::tempdir().unwrap();
    let url = format!(
        "http://{}:{}@127.0.0.1:{}/ops.git",
        server.username,
        server.token,
        server.port()
    );
    git(clone.path(), &["clone", "-q", "--mirror", &url, "copy.git"]);
    let copy = clone.path().join("copy.git");
    assert_eq!(
        git(&copy, &["rev-parse", "refs/heads/branch-39"]),
        work.head()
    );
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r.gzip && r.status == 200),
        "{requests:#?}"
    );
}

// --- SSH ----------------------------------------------------------------

/// A bare repository outside any server's root, for SSH (sshd runs
/// `git-upload-pack '<path>'` as the login user).
fn bare_repo(dir: &Path) -> PathBuf {
    let path = dir.join("ops.git");
    git(
        dir,
        &["init", "-q", "--bare", "-b", "main", path.to_str().unwrap()],
    );
    path
}

fn ssh_spec(sshd: &Sshd, repo: &Path, known_hosts: PathBuf) -> GitSpec {
    GitSpec {
        url: sshd.url(repo),
        branch: "main".into(),
        auth: GitAuth::SshKey {
            private_key: sshd.client_key.clone(),
            known_hosts,
        },
    }
}

#[test]
fn ssh_clone_and_incremental_fetch() {
    let sshd = Sshd::start();
    let repos = tempfile::tempdir().unwrap();
    let bare = bare_repo(repos.path());
    let work = Workdir::new(&bare);
    work.write("apps/web/compose.yml", "web: 1\n");
    let first = work.commit("first");
    work.push("main");

    let (mut source, _cache) = new_source(ssh_spec(&sshd, &bare, sshd.known_hosts.clone()));
    let revision = source.sync().unwrap();
    assert_eq!(revision.commit, first);
    assert_eq!(read(&revision.dir, "apps/web/compose.yml"), "web: 1\n");

    work.write("apps/web/compose.yml", "web: 2\n");
    let second = work.commit("second");
    work.push("main");
    let revision = source.sync().unwrap();
    assert_eq!(revision.commit, second);
    assert_eq!(read(&revision.dir, "apps/web/compose.yml"), "web: 2\n");
    // incremental: commit, trees /, apps, apps/web, and the blob
    let fetch = source.last_fetch().expect("downloaded");
    assert_eq!(fetch.received_objects, 5, "{fetch:?}");
    assert!(sshd.accepted_connections() >= 2, "{}", sshd.log());

    let missing = repos.path().join("missing.git");
    let (mut source, _cache) = new_source(ssh_spec(&sshd, &missing, sshd.known_hosts.clone()));
    let error = source.sync().unwrap_err();
    assert!(
        matches!(error, GitError::RepositoryNotFound { .. }),
        "{error:?}"
    );
}

#[test]
fn ssh_unknown_host_key_is_refused_before_logging_in() {
    let sshd = Sshd::start();
    let repos = tempfile::tempdir().unwrap();
    let bare = bare_repo(repos.path());
    let work = Workdir::new(&bare);
    work.write("a.yml", "a: 1\n");
    work.commit("a");
    work.push("main");
    // a known_hosts file that knows this key, but for another port
    let other = repos.path().join("known_hosts.other");
    std::fs::write(&other, format!("[127.0.0.1]:1 {}\n", sshd.host_public_key)).unwrap();

    let (mut source, cache) = new_source(ssh_spec(&sshd, &bare, other.clone()));
    let error = source.sync().unwrap_err();

    let GitError::HostKeyUnknown {
        host,
        known_hosts,
        key_type,
        fingerprint,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(host, &format!("[127.0.0.1]:{}", sshd.port));
    assert_eq!(known_hosts, &other);
    assert_eq!(key_type, "ssh-ed25519");
    assert_eq!(fingerprint, &ssh_keygen_fingerprint(&sshd));
    assert!(
        error.to_string().contains(&fingerprint.to_string()),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert_eq!(sshd.accepted_connections(), 0, "{}", sshd.log());
    assert!(!cache.path().join("cache/worktree").exists());
}

#[test]
fn ssh_changed_host_key_is_refused() {
    let sshd = Sshd::start();
    let repos = tempfile::tempdir().unwrap();
    let bare = bare_repo(repos.path());
    let (mut source, _cache) = new_source(ssh_spec(&sshd, &bare, sshd.wrong_known_hosts()));
    let error = source.sync().unwrap_err();
    assert!(
        matches!(error, GitError::HostKeyMismatch { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("does not match"), "{error}");
    assert_eq!(sshd.accepted_connections(), 0, "{}", sshd.log());
}

#[test]
fn ssh_key_not_authorized_is_refused() {
    let sshd = Sshd::start();
    let repos = tempfile::tempdir().unwrap();
    let bare = bare_repo(repos.path());
    let stranger = repos.path().join("stranger_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(status.success());
    let mut spec = ssh_spec(&sshd, &bare, sshd.known_hosts.clone());
    spec.auth = GitAuth::SshKey {
        private_key: stranger,
        known_hosts: sshd.known_hosts.clone(),
    };
    let (mut source, _cache) = new_source(spec);
    let error = source.sync().unwrap_err();
    assert!(matches!(error, GitError::AuthRejected { .. }), "{error:?}");
    assert!(
        error.to_string().contains("SSH key was not accepted"),
        "{error}"
    );
}

/// `SHA256:…` of the server's host key, as `ssh-keygen -l` prints it.
fn ssh_keygen_fingerprint(sshd: &Sshd) -> String {
    let file = sshd.dir.join("host.pub.for-fingerprint");
    std::fs::write(&file, format!("{}\n", sshd.host_public_key)).unwrap();
    let output = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&file)
        .output()
        .unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

// --- local directory ------------------------------------------------------

#[test]
fn dir_watcher_reports_changes_but_not_git_metadata_reads_or_symlinked_dirs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".git/refs")).unwrap();
    std::fs::write(dir.path().join("a.yml"), "a: 1\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (watcher, mut changes) = DirWatcher::new(dir.path(), Duration::from_millis(200)).unwrap();
    assert_eq!(watcher.root(), dir.path().canonicalize().unwrap());

    // git's own bookkeeping, the reconciler reading the tree, and a write
    // behind a symlink (not part of the project: FileTree does not follow it)
    std::fs::write(outside.path().join("x.yml"), "x: 1\n").unwrap();
    std::fs::write(dir.path().join(".git/index.lock"), "x").unwrap();
    std::fs::write(dir.path().join(".git/refs/main"), "0000").unwrap();
    std::fs::remove_file(dir.path().join(".git/index.lock")).unwrap();
    FileTree::read_dir(dir.path(), &TreeLimits::default()).unwrap();
    let quiet = runtime.block_on(async {
        tokio::time::timeout(Duration::from_millis(1500), changes.recv()).await
    });
    assert!(quiet.is_err(), "unexpected change: {quiet:?}");

    // a real edit
    std::fs::create_dir_all(dir.path().join("apps/web")).unwrap();
    std::fs::write(dir.path().join("apps/web/compose.yml"), "services: {}\n").unwrap();
    std::fs::write(dir.path().join("a.yml"), "a: 2\n").unwrap();
    let change = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), changes.recv()).await })
        .expect("a change within 10 s")
        .expect("the watcher is alive");
    assert!(change.paths.contains(&PathBuf::from("a.yml")), "{change:?}");
    assert!(
        change.paths.iter().all(|p| !p.starts_with(".git")),
        "{change:?}"
    );
    drop(watcher);
}
