"""The server-side remote settings file: owner-only, environment first, key never reported."""

import json
import stat

import pytest

from maskmargin.errors import InvalidParameter
from maskmargin.remote import settings as remote_settings

KEY = "saved-key-77aa"


def test_save_read_and_precedence(tmp_path):
    folder = tmp_path / "__maskmargin"
    remote_settings.save(folder, KEY, "http://127.0.0.1:8700/v1")
    path = folder / "remote.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"apiKey": KEY, "apiUrl": "http://127.0.0.1:8700/v1"}
    cfg = remote_settings.effective_config(folder, env={})
    assert cfg.api_key == KEY and cfg.api_url == "http://127.0.0.1:8700/v1"
    env = {"RUNWARE_API_KEY": "env-key", "RUNWARE_API_URL": "https://example.com/v1"}
    cfg = remote_settings.effective_config(folder, env=env)
    assert cfg.api_key == "env-key" and cfg.api_url == "https://example.com/v1"
    status = remote_settings.status(folder, env={})
    assert status == {
        "apiUrl": "http://127.0.0.1:8700/v1",
        "apiUrlSource": "saved",
        "keySet": True,
        "keySource": "saved",
    }
    assert KEY not in json.dumps(status)
    assert remote_settings.status(folder, env=env)["keySource"] == "environment"
    remote_settings.save(folder, api_key="")
    assert remote_settings.status(folder, env={})["keySet"] is False
    assert remote_settings.effective_config(folder, env={}).api_url == "http://127.0.0.1:8700/v1"


def test_bad_values_are_refused_and_corrupt_files_ignored(tmp_path):
    with pytest.raises(InvalidParameter) as err:
        remote_settings.save(tmp_path, "two words")
    assert err.value.parameter == "apiKey" and "two words" not in err.value.message
    with pytest.raises(InvalidParameter) as err:
        remote_settings.save(tmp_path, api_url="file:///etc")
    assert err.value.parameter == "RUNWARE_API_URL"
    (tmp_path / "remote.json").write_text("{not json")
    assert remote_settings.read_saved(tmp_path) == {}
    assert remote_settings.effective_config(tmp_path, env={}).api_key is None
