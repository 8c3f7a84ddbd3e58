"""``laconic serve`` (rl/engines/serve.py) without starting vLLM: its command line and the bind guard."""

import pytest

from rl import cli
from rl.engines import serve


def test_command_has_the_flags_the_client_needs():
    cmd = serve.command("/m", "127.0.0.1", 8000, "k", ["--dtype", "float32"], cuda=False)
    text = " ".join(cmd)
    assert "-m vllm.entrypoints.openai.api_server --model /m --host 127.0.0.1 --port 8000 --api-key k" in text
    assert "--logprobs-mode processed_logprobs" in text and "--generation-config vllm" in text
    assert "--enforce-eager" in cmd and "--kv-cache-memory-bytes" in cmd and cmd[-2:] == ["--dtype", "float32"]
    assert "--weight-transfer-config" not in cmd
    gpu = serve.command("/m", "127.0.0.1", 8000, "k", ["--gpu-memory-utilization=0.5"], cuda=True)
    assert gpu[gpu.index("--weight-transfer-config") + 1] == '{"backend": "nccl"}'
    assert "--kv-cache-memory-bytes" not in gpu and "--enforce-eager" not in gpu
    # CPU: prefills unchunked (vLLM's CPU worker fails a seeded request whose prefill was chunked)
    assert "--no-enable-chunked-prefill" in cmd and "--no-enable-chunked-prefill" not in gpu
    assert "--no-enable-chunked-prefill" not in serve.command("/m", "h", 1, "k", ["--enable-chunked-prefill"], cuda=False)


class FakeServer:
    """Stands in for subprocess.Popen: records the command, exits at once."""

    calls: list = []

    def __init__(self, cmd, env):
        FakeServer.calls.append((cmd, env))

    def poll(self):
        return 0

    def wait(self):
        return 0


def test_loopback_by_default_other_hosts_need_allow_remote(monkeypatch, capsys, untrained_toy):
    monkeypatch.setattr(serve.subprocess, "Popen", FakeServer)
    FakeServer.calls.clear()
    assert cli.main(["serve", str(untrained_toy), "--api-key", "k"]) == 0
    cmd, env = FakeServer.calls[-1]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and env["VLLM_SERVER_DEV_MODE"] == "1"
    assert cli.main(["serve", str(untrained_toy), "--host", "0.0.0.0"]) == 2  # refused, nothing started
    assert len(FakeServer.calls) == 1 and "needs --allow-remote" in capsys.readouterr().err
    assert cli.main(["serve", str(untrained_toy), "--host", "0.0.0.0", "--allow-remote", "--port", "9001",
                     "--max-model-len", "128"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: binding to 0.0.0.0" in err and "/collective_rpc" in err and "/update_weights" in err
    cmd, _ = FakeServer.calls[-1]
    assert cmd[cmd.index("--port") + 1] == "9001" and cmd[-2:] == ["--max-model-len", "128"]


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                       ("0.0.0.0", False), ("10.0.0.5", False), ("myhost", False)])
def test_is_loopback(host, loop):
    assert serve.is_loopback(host) is loop


def test_server_config_is_checked_early():
    from rl.config import ConfigError, load_config

    cfg = load_config(overrides=["rollout.engine=vllm-server", "rollout.vllm_server_urls=[http://127.0.0.1:8000,http://10.0.0.2:8001]"])
    assert cfg.rollout.vllm_server_urls == ["http://127.0.0.1:8000", "http://10.0.0.2:8001"]
    with pytest.raises(ConfigError, match="rollout.vllm_server_urls must be a non-empty list of http"):
        load_config(overrides=["rollout.engine=vllm-server", "rollout.vllm_server_urls=[localhost:8000]"])
    with pytest.raises(ConfigError, match="rollout.vllm_server_weight_sync: 'gloo' is not one of"):
        load_config(overrides=["rollout.vllm_server_weight_sync=gloo"])


def test_train_reports_an_unreachable_server_in_one_line(untrained_toy, tmp_path, capsys):
    import socket

    from tests.conftest import ROOT
    from tests.train.test_trainer import overrides

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    rc = cli.main(["train", str(ROOT / "recipes" / "quickstart.yaml"), *overrides(
        untrained_toy, tmp_path / "run", "rollout.engine=vllm-server", f"rollout.vllm_server_urls=[{url}]",
        "rollout.vllm_server_timeout=1", "eval.before=false")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1] == (f"laconic: no vLLM server answers at {url}/health; start one with "
                                   "`laconic serve MODEL` and list it in rollout.vllm_server_urls")
