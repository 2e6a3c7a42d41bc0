"""The headless Scipion harness points Scipion at a project-local home."""

import os

import pyworkflow as pw

import deepqs_headless


def test_scipion_reads_the_headless_home():
    home = deepqs_headless.default_home()
    assert os.environ["SCIPION_DOMAIN"] == "pwem"
    assert pw.Config.SCIPION_USER_DATA == os.path.join(home, "data")
    assert pw.Config.SCIPION_HOSTS == os.path.join(home, "config", "hosts.conf")
    with open(pw.Config.SCIPION_HOSTS) as fh:
        assert fh.readline().strip() == "[localhost]"


def test_hosts_conf_is_loadable():
    from pyworkflow.protocol import HostConfig

    hosts = HostConfig.load(pw.Config.SCIPION_HOSTS)
    assert list(hosts) == ["localhost"]
    assert hosts["localhost"].getAddress() == "localhost"
