"""testinfra checks of the containerd role on the converged Debian container."""


def test_packages_installed_and_held(host):
    assert host.package("containerd").is_installed
    assert host.package("runc").is_installed
    selections = host.check_output("dpkg --get-selections containerd runc")
    assert selections.split() == ["containerd", "hold", "runc", "hold"]


def test_config_uses_systemd_cgroups_and_pinned_pause_image(host):
    conf = host.file("/etc/containerd/config.toml")
    assert conf.mode == 0o644
    text = conf.content_string
    assert "SystemdCgroup = true" in text
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in text
    assert 'config_path = "/etc/containerd/certs.d"' in text


def test_daemon_loaded_the_rendered_config(host):
    """containerd itself reports the values: the file is not only written but in effect."""
    dumped = host.run("containerd config dump")
    assert dumped.rc == 0, dumped.stderr
    assert "SystemdCgroup = true" in dumped.stdout
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in dumped.stdout


def test_registry_mirror_hosts_file(host):
    text = host.file("/etc/containerd/certs.d/docker.io/hosts.toml").content_string
    assert 'server = "https://registry-1.docker.io"' in text
    assert '[host."https://harbor.example.lan/v2/dockerhub"]' in text


def test_service_running_and_answering_on_its_socket(host):
    svc = host.service("containerd")
    assert svc.is_enabled
    assert svc.is_running
    assert host.socket("unix:///run/containerd/containerd.sock").is_listening
    version = host.run("ctr --address /run/containerd/containerd.sock version")
    assert version.rc == 0, version.stderr
    assert "Server:" in version.stdout


def test_crictl_points_at_containerd(host):
    assert "unix:///run/containerd/containerd.sock" in host.file("/etc/crictl.yaml").content_string
