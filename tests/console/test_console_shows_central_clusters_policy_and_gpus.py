"""Issue 18 in the console: the clusters' page lists every Kubernetes cluster of the inventory, and a central
cluster's page shows its platform policy part by part, the audit of what breaks it (the planted violations the
simulator seeds: ``billing/ledger`` off the overcommit ratio, ``ml/video-transcode`` without its anti-affinity),
and its GPUs per node and per namespace beside what the agents on its GPU nodes report, in English and Chinese;
what the page shows is what the API says (``edgefleet clusters audit`` and ``edgefleet clusters gpus`` read it too).

Debian's headless Chromium against the package's controller and simulator (tests/console/conftest.py), whose
central-01 is a central cluster with the company's policy (``CENTRAL_SITE``).
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import CENTRAL, Console, opened_page, screenshot

pytestmark = pytest.mark.slow

HAN = re.compile(r"[\u4e00-\u9fff]")
PLANTED = {
    ("billing/ledger", "off-ratio"),
    ("ml/video-transcode", "no-anti-affinity"),
    ("ml-training/llm-finetune", "off-ratio"),
}


def api(console: Console, path: str) -> object:
    response = httpx.get(console.url + path, headers=console.headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def findings(page: Page) -> set[tuple[str, str]]:
    rows = page.locator("#findings tbody tr").evaluate_all("els => els.map(e => [e.dataset.name, e.dataset.rule])")
    return {(name, rule) for name, rule in rows}


def test_a_central_clusters_policy_audit_and_gpus(console: Console, page: Page) -> None:
    page.goto(console.url + "/")
    expect(page.locator("body[data-ready=overview]")).to_be_attached()
    page.locator("#nav a[href='/clusters']").click()
    expect(page.locator("body[data-ready=clusters]")).to_be_attached()
    clusters = api(console, "/api/v1/clusters")
    assert isinstance(clusters, list)
    expect(page.locator("#clusters tbody tr")).to_have_count(len(clusters))
    expect(page.locator(f"#clusters tr[data-cluster={CENTRAL}]")).to_contain_text("central cluster")
    screenshot(page, "clusters")

    page.locator(f"#clusters tr[data-cluster={CENTRAL}] a").click()
    expect(page).to_have_url(f"{console.url}/clusters/{CENTRAL}")
    expect(page.locator("body[data-ready=cluster]")).to_be_attached()

    # The policy, part by part, as the manifest gives it.
    policy = page.locator("#policy li")
    expect(policy).to_have_count(9)
    expect(page.locator("#policy li[data-part=overcommit]")).to_have_text(
        "Overcommit: requests are the limits divided by 10 for CPU and by 1.5 for memory"
    )
    expect(page.locator("#policy li[data-part=exclusive_namespaces]")).to_have_text(
        "Hosts of bigdata kept for namespace(s) bigdata, 00:00-06:00 in the cluster's time"
    )
    expect(page.locator("#policy li[data-part=anti_affinity]")).to_have_text(
        "Kept apart (gpu-heavy): sorting-recognition, video-transcode"
    )

    # The audit finds the planted violations, and says what the API says. (The big-data host's intruder breaks
    # the policy only inside its night window, so the two readings are compared, not a fixed count.)
    expect(page.locator("#findings tbody tr").first).to_be_visible()
    shown = findings(page)
    assert shown >= PLANTED
    audit = api(console, f"/api/v1/clusters/{CENTRAL}/audit")
    assert isinstance(audit, dict)
    assert shown == {(f"{f['namespace']}/{f['name']}", f["rule"]) for f in audit["findings"]}
    off_ratio = sum(1 for f in audit["findings"] if f["rule"] == "off-ratio")  # cpu and memory of each workload
    assert off_ratio >= 2
    expect(page.locator("#audit-counts [data-rule=off-ratio]")).to_have_attribute("data-count", str(off_ratio))
    expect(page.locator("#audit-summary")).to_contain_text(f"{audit['workloads']} workloads")

    # "Audit again" reads the cluster again.
    page.evaluate("window.sameDocument = true")
    with page.expect_response(re.compile(rf"/api/v1/clusters/{CENTRAL}/audit$")):
        page.locator("#audit-again").click()
    expect(page.locator("#audit-again")).to_be_enabled()
    assert page.evaluate("window.sameDocument") is True

    # The GPUs: each GPU node with its allocatable and requested GPUs, joined to its box's agent readings.
    gpus = api(console, f"/api/v1/clusters/{CENTRAL}/gpus")
    assert isinstance(gpus, dict)
    assert [n["node"] for n in gpus["nodes"]] == [f"{CENTRAL}-worker-01", f"{CENTRAL}-worker-02"]
    expect(page.locator("#gpu-nodes tbody tr")).to_have_count(2)
    worker = page.locator(f"#gpu-nodes tr[data-node={CENTRAL}-worker-01]")
    expect(worker.locator("td[data-allocatable]")).to_have_text("4")
    expect(worker.locator("[data-gpu]")).to_have_count(4)
    expect(worker.locator("[data-gpu='0']")).to_have_text(re.compile(r"^#0 \d+ % · \d+ °C · [\d.]+ GiB / 24\.0 GiB$"))
    expect(page.locator("#gpu-namespaces tr[data-namespace=ml] td").nth(1)).to_have_text(
        str(next(n["requested"] for n in gpus["namespaces"] if n["namespace"] == "ml"))
    )
    expect(page.locator("#gpus-summary")).to_contain_text(f"{gpus['requested']} of {gpus['allocatable']} GPUs")
    screenshot(page, "cluster")

    # A node's box is a tap away.
    worker.locator("a").click()
    expect(page).to_have_url(f"{console.url}/boxes/{CENTRAL}-worker-01")


def test_a_central_clusters_page_in_chinese(console: Console, browser: Browser) -> None:
    with opened_page(browser, locale="zh-CN", headers=console.headers) as (page, problems):
        page.goto(f"{console.url}/clusters/{CENTRAL}")
        expect(page.locator("body[data-ready=cluster]")).to_be_attached()
        expect(page.locator("h1")).to_have_text(f"集群 {CENTRAL}")
        expect(page.locator("#policy li[data-part=overcommit]")).to_have_text(
            "超卖：请求 = 限制 ÷ 10（CPU），限制 ÷ 1.5（内存）"
        )
        for item in page.locator("#policy li").all():
            expect(item).to_have_text(HAN)
        expect(page.locator("#findings tbody tr[data-rule=off-ratio] td").nth(3)).to_have_text("请求偏离超卖比")
        expect(page.locator("#gpu-nodes tbody tr")).to_have_count(2)
        screenshot(page, "cluster-zh-CN")
        page.goto(f"{console.url}/clusters")
        expect(page.locator("body[data-ready=clusters]")).to_be_attached()
        expect(page.locator(f"#clusters tr[data-cluster={CENTRAL}]")).to_contain_text("中心集群")
    assert problems.errors == []
    assert problems.missing_strings == []
