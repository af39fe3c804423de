//! A node as the kubelet sees it: a real containerd 1.6 per test (own root, state and socket)
//! with its CRI plugin enabled, `rootseal install containerd` run on its config, and a real CRI
//! client (the `k8s-cri` crate's tonic client over the unix socket) doing what the kubelet does:
//! RunPodSandbox (host network, so no CNI), CreateContainer, StartContainer, with kubelet-style
//! mounts under /var/lib/kubelet/pods/UID. Images are OCI archives the test builds, imported
//! into the `k8s.io` namespace with ctr; the sandbox ("pause") image is busybox sleeping.
#![allow(dead_code)]

use crate::containerd::{text, Containerd};
use crate::images::*;
use crate::util::*;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The RuntimeClass handler `rootseal install containerd` registers by default.
pub const HANDLER: &str = "rootseal";
/// CRI calls may wait for a hook on a loaded machine: a bound that only catches hangs.
const CALL: Duration = Duration::from_secs(120);

pub(crate) fn wrapper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rootseal-runtime"))
}

/// What a node is built with.
#[derive(Default)]
pub(crate) struct NodeSpec {
    /// Seal the pause image too (sandboxes are exempt by default; `exempt = []` verifies them).
    pub seal_pause: bool,
    /// Extra rootseal config (TOML before `[alerts]`).
    pub config: &'static str,
    /// Let the rootseal runtime pass every pod and container annotation to the spec
    /// (containerd's `pod_annotations = ["*", "*/*"]`; containerd matches with Go's
    /// `filepath.Match`, where `*` stops at a `/`): the most permissive setting an operator can
    /// choose, under which a pod author controls every annotation the CRI does not set itself.
    pub pass_annotations: bool,
}

pub(crate) struct CriNode {
    pub env: Env,
    pub containerd: Containerd,
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    pub key: PathBuf,
    /// The sealed two-layer app image.
    pub app: String,
    /// The sandbox image (`sandbox_image` in containerd's config).
    pub pause: String,
    /// containerd's config file (the one `rootseal install containerd` edited).
    pub config: PathBuf,
    pods: std::cell::RefCell<Vec<String>>,
    kubelet_dirs: std::cell::RefCell<Vec<PathBuf>>,
}

/// The test images, built as OCI archives: the sealed two-layer app and the busybox pause image
/// (sealed when asked), both sealed with `key` into `env`'s seal store.
pub(crate) struct Images {
    pub app: String,
    pub pause: String,
    archives: Vec<PathBuf>,
}

impl Images {
    /// The pause image's name for `tag` (what `sandbox_image` names).
    pub(crate) fn pause_name(tag: &str) -> String {
        format!("test.local/rootseal/pause-{tag}:{}", std::process::id())
    }

    pub(crate) fn build(env: &Env, key: &Path, tag: &str, seal_pause: bool) -> Images {
        let pid = std::process::id();
        let app = format!("test.local/rootseal/cri-{tag}:{pid}");
        let pause = Images::pause_name(tag);
        let app_archive = multi_layer_archive(env.tmp.path(), &app, "hello from a sealed pod\n");
        let pause_archive = oci_archive_with_cmd(
            env.tmp.path(),
            &pause,
            vec![(busybox_layer().finish(), Compression::Gzip)],
            &["/bin/sleep", "3600"],
        );
        seal_archive(env, key, &app_archive, &[]);
        if seal_pause {
            seal_archive(env, key, &pause_archive, &[]);
        }
        Images { app, pause, archives: vec![app_archive, pause_archive] }
    }
}

/// containerd's CRI config for a test node: host-network pods need no CNI, AppArmor is off (the
/// CRI would load its profile into the host's kernel), the stream server takes a free port, and
/// `restrict_oom_score_adj` keeps the sandbox's oom_score_adj (-998) from going below the
/// daemon's own: lowering it needs CAP_SYS_RESOURCE in the initial user namespace, which a CI
/// machine that is itself a container lacks (runc: "failed to update /proc/self/oom_score_adj").
pub(crate) fn containerd_config(dir: &Path, pause: &str) -> String {
    let d = dir.display();
    format!(
        r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{pause}"
    disable_apparmor = true
    restrict_oom_score_adj = true
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{d}/cni/bin"
      conf_dir = "{d}/cni/net.d"
"#
    )
}

impl CriNode {
    pub(crate) fn new(tag: &str, spec: NodeSpec) -> CriNode {
        let env = Env::new();
        env.write_config(spec.config);
        let (key, public) = env.keygen("ci-2026");
        env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
        let images = Images::build(&env, &key, tag, spec.seal_pause);
        let dir = env.path("cri");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(&config, containerd_config(&dir, &images.pause)).unwrap();
        let w = wrapper();
        let (out, _) = env.expect(
            0,
            [
                OsStr::new("install"),
                OsStr::new("containerd"),
                OsStr::new("--config"),
                config.as_os_str(),
                OsStr::new("--runtime-binary"),
                w.as_os_str(),
            ],
        );
        assert!(out.contains("installed runtime \"rootseal\""), "{out}");
        let mut toml = std::fs::read_to_string(&config).unwrap();
        if spec.pass_annotations {
            let table = "containerd.runtimes.rootseal]\n";
            assert!(toml.contains(table), "{toml}");
            toml = toml.replacen(
                table,
                &format!("{table}pod_annotations = [\"*\", \"*/*\"]\ncontainer_annotations = [\"*\", \"*/*\"]\n"),
                1,
            );
            std::fs::write(&config, &toml).unwrap();
        }
        let containerd = Containerd::start_with(&env, "cri", &toml);
        CriNode::attach(env, containerd, key, images, config)
    }

    /// A node on a running containerd: imports the images into `k8s.io` and connects.
    pub(crate) fn attach(env: Env, containerd: Containerd, key: PathBuf, images: Images, config: PathBuf) -> CriNode {
        for archive in &images.archives {
            let o = containerd.ctr(&[
                OsStr::new("-n"),
                OsStr::new("k8s.io"),
                OsStr::new("images"),
                OsStr::new("import"),
                archive.as_os_str(),
            ]);
            assert!(o.status.success(), "ctr import: {}", text(&o));
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(connect(containerd.socket()));
        CriNode {
            env,
            containerd,
            rt,
            client,
            key,
            app: images.app,
            pause: images.pause,
            config,
            pods: Default::default(),
            kubelet_dirs: Default::default(),
        }
    }

    /// One CRI call, bounded in time.
    fn call<T>(
        &self,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        self.rt
            .block_on(async { tokio::time::timeout(CALL, f).await })
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("test bound: CRI call took over 120 s")))
            .map(tonic::Response::into_inner)
    }

    /// The pod sandbox config the kubelet would send for pod `name` in `namespace`.
    pub(crate) fn pod_config(
        &self,
        name: &str,
        namespace: &str,
        annotations: &[(&str, &str)],
    ) -> cri::PodSandboxConfig {
        let uid = format!("{name}-{}", std::process::id());
        let logs = self.env.path(&format!("pods/{namespace}_{name}_{uid}"));
        std::fs::create_dir_all(&logs).unwrap();
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata { name: name.into(), uid, namespace: namespace.into(), attempt: 0 }),
            // Host network: the kubelet sends no hostname (runc cannot set one without a UTS
            // namespace of the pod's own).
            log_directory: logs.display().to_string(),
            labels: HashMap::from([
                ("io.kubernetes.pod.name".into(), name.into()),
                ("io.kubernetes.pod.namespace".into(), namespace.into()),
            ]),
            annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Node as i32,
                        pid: cri::NamespaceMode::Pod as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox under `handler`; the pod is removed when the node is dropped.
    pub(crate) fn run_pod(&self, config: &cri::PodSandboxConfig, handler: &str) -> Result<String, tonic::Status> {
        let mut c = self.client.clone();
        let req = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler.into() };
        let id = self.call(c.run_pod_sandbox(req))?.pod_sandbox_id;
        self.pods.borrow_mut().push(id.clone());
        Ok(id)
    }

    /// The kubelet's mounts for container `name` of pod `pod`, under the real
    /// /var/lib/kubelet/pods/UID (removed when the node is dropped): /etc/hosts and
    /// /dev/termination-log (writable files), the service-account token (read-only directory),
    /// an emptyDir at /data (writable).
    pub(crate) fn kubelet_mounts(&self, pod: &cri::PodSandboxConfig, name: &str) -> Vec<cri::Mount> {
        let uid = &pod.metadata.as_ref().unwrap().uid;
        let base = PathBuf::from("/var/lib/kubelet/pods").join(uid);
        self.kubelet_dirs.borrow_mut().push(base.clone());
        let hosts = base.join("etc-hosts");
        let term = base.join("containers").join(name).join("0");
        let token = base.join("volumes/kubernetes.io~projected/kube-api-access-test");
        let empty = base.join("volumes/kubernetes.io~empty-dir/data");
        for d in [&token, &empty, &term.parent().unwrap().to_path_buf()] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        std::fs::write(&term, "").unwrap();
        std::fs::write(token.join("token"), "not-a-real-token\n").unwrap();
        let m = |container: &str, host: &Path, readonly: bool| cri::Mount {
            container_path: container.into(),
            host_path: host.display().to_string(),
            readonly,
            ..Default::default()
        };
        vec![
            m("/etc/hosts", &hosts, false),
            m("/dev/termination-log", &term, false),
            m("/var/run/secrets/kubernetes.io/serviceaccount", &token, true),
            m("/data", &empty, false),
        ]
    }

    /// The container config the kubelet would send: `image`, `cmd`, the kubelet's mounts and
    /// `readOnlyRootFilesystem` as given.
    pub(crate) fn container_config(
        &self,
        pod: &cri::PodSandboxConfig,
        name: &str,
        image: &str,
        readonly: bool,
        cmd: &[&str],
    ) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}/0.log"),
            mounts: self.kubelet_mounts(pod, name),
            labels: HashMap::from([("io.kubernetes.container.name".into(), name.into())]),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    readonly_rootfs: readonly,
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Node as i32,
                        pid: cri::NamespaceMode::Container as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// CreateContainer then StartContainer (where runc runs and so the hook); the error of
    /// either as the kubelet would get it. Returns the container id.
    pub(crate) fn create_start(
        &self,
        pod_id: &str,
        pod: &cri::PodSandboxConfig,
        config: cri::ContainerConfig,
    ) -> Result<String, (Option<String>, tonic::Status)> {
        let mut c = self.client.clone();
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod_id.into(),
            config: Some(config),
            sandbox_config: Some(pod.clone()),
        };
        let id = self.call(c.create_container(req)).map_err(|e| (None, e))?.container_id;
        match self.call(c.start_container(cri::StartContainerRequest { container_id: id.clone() })) {
            Ok(_) => Ok(id),
            Err(e) => Err((Some(id), e)),
        }
    }

    /// The container's CRI status.
    pub(crate) fn status(&self, id: &str) -> cri::ContainerStatus {
        let mut c = self.client.clone();
        let req = cri::ContainerStatusRequest { container_id: id.into(), verbose: false };
        self.call(c.container_status(req)).expect("ContainerStatus").status.expect("a status")
    }

    /// Waits for the container to exit; returns its exit code.
    pub(crate) fn wait_exit(&self, id: &str) -> i32 {
        let start = Instant::now();
        loop {
            let s = self.status(id);
            if s.state == cri::ContainerState::ContainerExited as i32 {
                return s.exit_code;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "container {id} did not exit: {s:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the container wrote (the CRI log file, `TIME STREAM TAG LINE` per line), as text.
    pub(crate) fn logs(&self, pod: &cri::PodSandboxConfig, name: &str) -> String {
        let path = Path::new(&pod.log_directory).join(format!("{name}/0.log"));
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The pod sandboxes the CRI lists (id, state).
    pub(crate) fn pods(&self) -> Vec<cri::PodSandbox> {
        let mut c = self.client.clone();
        self.call(c.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })).expect("ListPodSandbox").items
    }

    /// Reconnects after containerd was restarted.
    pub(crate) fn reconnect(&mut self) {
        self.client = self.rt.block_on(connect(self.containerd.socket()));
    }

    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.env.path("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Seals another archive with the node's key and imports the seal.
    pub(crate) fn seal(&self, archive: &Path, extra: &[&str]) {
        seal_archive(&self.env, &self.key, archive, extra);
    }

    /// The committed snapshot file `rel` whose content is `content` (a lower directory of every
    /// container of its image).
    pub(crate) fn snapshot_file(&self, rel: &str, content: &str) -> PathBuf {
        let base = self.containerd.root_dir().join("io.containerd.snapshotter.v1.overlayfs/snapshots");
        std::fs::read_dir(&base)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("fs").join(rel))
            .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t == content))
            .unwrap_or_else(|| panic!("no snapshot under {} holds {rel} = {content:?}", base.display()))
    }

    /// Imports an archive into the CRI's namespace.
    pub(crate) fn import(&self, archive: &Path) {
        let o = self.containerd.ctr(&[
            OsStr::new("-n"),
            OsStr::new("k8s.io"),
            OsStr::new("images"),
            OsStr::new("import"),
            archive.as_os_str(),
        ]);
        assert!(o.status.success(), "ctr import: {}", text(&o));
    }
}

impl CriNode {
    /// Stops and removes every pod this node ran (what a drain does).
    pub(crate) fn remove_pods(&self) {
        for id in self.pods.take() {
            let mut c = self.client.clone();
            let _ = self.call(c.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id.clone() }));
            let _ = self.call(c.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id.clone() }));
        }
    }
}

impl Drop for CriNode {
    fn drop(&mut self) {
        // Remove every pod (containers, shims and mounts with it) before containerd stops:
        // a shim outlives its containerd.
        self.remove_pods();
        for d in self.kubelet_dirs.borrow().iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Seals an archive with `key` and imports the seal into the node's store.
pub(crate) fn seal_archive(env: &Env, key: &Path, archive: &Path, extra: &[&str]) {
    let seal = env.path(&format!("{}.seal.json", archive.file_name().unwrap().to_string_lossy()));
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("seal"),
        archive.as_os_str(),
        OsStr::new("--key"),
        key.as_os_str(),
        OsStr::new("--out"),
        seal.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    env.expect(0, &args);
    env.expect(0, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
}

/// A CRI client on containerd's unix socket.
async fn connect(sock: &Path) -> RuntimeServiceClient<Channel> {
    let sock = sock.to_path_buf();
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(sock).await?))
            }
        }))
        .await
        .expect("connect to containerd's CRI socket");
    RuntimeServiceClient::new(channel)
}

/// `rootseal` on the CLI with the node's config, for status etc.
pub(crate) fn status_json(env: &Env) -> serde_json::Value {
    let out = env.run(["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}
