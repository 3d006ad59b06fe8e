"""Write the demo fleet inventory in sites/: ~100 transfer centers and 3 central clusters, about 2,000 boxes, and
the Kubernetes clusters that hold them: the KubeEdge host clusters of the transfer centers (a few, by region) in
sites/clusters.yaml, and each central site's cluster in that site's file.

Deterministic (seeded), so re-running it gives the same files. Run: python scripts/generate_sites.py
"""

from __future__ import annotations

import random
from pathlib import Path

# (site id, display name, region, time zone): transfer centers of a national parcel carrier.
CENTERS = [
    ("bj-shunyi", "Beijing Shunyi", "north"),
    ("bj-daxing", "Beijing Daxing", "north"),
    ("tj-wuqing", "Tianjin Wuqing", "north"),
    ("sjz-zhengding", "Shijiazhuang Zhengding", "north"),
    ("ty-xiaodian", "Taiyuan Xiaodian", "north"),
    ("hhht-saihan", "Hohhot Saihan", "north"),
    ("bd-gaobeidian", "Baoding Gaobeidian", "north"),
    ("ts-fengrun", "Tangshan Fengrun", "north"),
    ("lf-guangyang", "Langfang Guangyang", "north"),
    ("hd-feixiang", "Handan Feixiang", "north"),
    ("sy-yuhong", "Shenyang Yuhong", "northeast"),
    ("dl-ganjingzi", "Dalian Ganjingzi", "northeast"),
    ("cc-kuancheng", "Changchun Kuancheng", "northeast"),
    ("hrb-daoli", "Harbin Daoli", "northeast"),
    ("as-tiexi", "Anshan Tiexi", "northeast"),
    ("jl-chuanying", "Jilin Chuanying", "northeast"),
    ("dq-ranghulu", "Daqing Ranghulu", "northeast"),
    ("sh-qingpu", "Shanghai Qingpu", "east"),
    ("sh-pudong", "Shanghai Pudong", "east"),
    ("sh-songjiang", "Shanghai Songjiang", "east"),
    ("nj-jiangning", "Nanjing Jiangning", "east"),
    ("sz-wuzhong", "Suzhou Wuzhong", "east"),
    ("wx-xishan", "Wuxi Xishan", "east"),
    ("cz-wujin", "Changzhou Wujin", "east"),
    ("nt-chongchuan", "Nantong Chongchuan", "east"),
    ("xz-tongshan", "Xuzhou Tongshan", "east"),
    ("hz-xiaoshan", "Hangzhou Xiaoshan", "east"),
    ("nb-yinzhou", "Ningbo Yinzhou", "east"),
    ("wz-longwan", "Wenzhou Longwan", "east"),
    ("jh-yiwu", "Jinhua Yiwu", "east"),
    ("jx-haining", "Jiaxing Haining", "east"),
    ("sx-keqiao", "Shaoxing Keqiao", "east"),
    ("tz-jiaojiang", "Taizhou Jiaojiang", "east"),
    ("hf-feidong", "Hefei Feidong", "east"),
    ("wh-jiujiang", "Wuhu Jiujiang", "east"),
    ("fz-minhou", "Fuzhou Minhou", "east"),
    ("xm-tongan", "Xiamen Tong'an", "east"),
    ("qz-jinjiang", "Quanzhou Jinjiang", "east"),
    ("nc-xinjian", "Nanchang Xinjian", "east"),
    ("jn-licheng", "Jinan Licheng", "east"),
    ("qd-jiaozhou", "Qingdao Jiaozhou", "east"),
    ("yt-fushan", "Yantai Fushan", "east"),
    ("wf-kuiwen", "Weifang Kuiwen", "east"),
    ("ly-lanshan", "Linyi Lanshan", "east"),
    ("zb-zhangdian", "Zibo Zhangdian", "east"),
    ("gz-baiyun", "Guangzhou Baiyun", "south"),
    ("gz-huadu", "Guangzhou Huadu", "south"),
    ("sz-longhua", "Shenzhen Longhua", "south"),
    ("sz-pingshan", "Shenzhen Pingshan", "south"),
    ("dg-humen", "Dongguan Humen", "south"),
    ("fs-nanhai", "Foshan Nanhai", "south"),
    ("zs-huoju", "Zhongshan Huoju", "south"),
    ("hzh-huiyang", "Huizhou Huiyang", "south"),
    ("st-chaoyang", "Shantou Chaoyang", "south"),
    ("jm-pengjiang", "Jiangmen Pengjiang", "south"),
    ("zj-mazhang", "Zhanjiang Mazhang", "south"),
    ("nn-jiangnan", "Nanning Jiangnan", "south"),
    ("gl-lingui", "Guilin Lingui", "south"),
    ("lz-liubei", "Liuzhou Liubei", "south"),
    ("hk-meilan", "Haikou Meilan", "south"),
    ("sy-tianya", "Sanya Tianya", "south"),
    ("zz-xinzheng", "Zhengzhou Xinzheng", "central"),
    ("ly-luolong", "Luoyang Luolong", "central"),
    ("wh-dongxihu", "Wuhan Dongxihu", "central"),
    ("wh-huangpi", "Wuhan Huangpi", "central"),
    ("xy-xiangzhou", "Xiangyang Xiangzhou", "central"),
    ("yc-xiling", "Yichang Xiling", "central"),
    ("cs-wangcheng", "Changsha Wangcheng", "central"),
    ("zz-lukou", "Zhuzhou Lukou", "central"),
    ("hy-zhengxiang", "Hengyang Zhengxiang", "central"),
    ("ny-wolong", "Nanyang Wolong", "central"),
    ("xx-hongqi", "Xinxiang Hongqi", "central"),
    ("cd-shuangliu", "Chengdu Shuangliu", "southwest"),
    ("cd-xindu", "Chengdu Xindu", "southwest"),
    ("cq-yubei", "Chongqing Yubei", "southwest"),
    ("cq-shapingba", "Chongqing Shapingba", "southwest"),
    ("km-guandu", "Kunming Guandu", "southwest"),
    ("gy-baiyun", "Guiyang Baiyun", "southwest"),
    ("my-fucheng", "Mianyang Fucheng", "southwest"),
    ("zy-huichuan", "Zunyi Huichuan", "southwest"),
    ("ls-chengguan", "Lhasa Chengguan", "southwest"),
    ("nc-shunqing", "Nanchong Shunqing", "southwest"),
    ("xa-lintong", "Xi'an Lintong", "northwest"),
    ("xa-huyi", "Xi'an Huyi", "northwest"),
    ("lz-anning", "Lanzhou Anning", "northwest"),
    ("xn-chengbei", "Xining Chengbei", "northwest"),
    ("yc-xingqing", "Yinchuan Xingqing", "northwest"),
    ("bj-baoji", "Baoji Jintai", "northwest"),
    ("yl-yuyang", "Yulin Yuyang", "northwest"),
    ("urc-midong", "Urumqi Midong", "northwest"),
    ("kashi-shule", "Kashgar Shule", "northwest"),
    ("yining-yining", "Yining Yining", "northwest"),
    ("korla-kuerle", "Korla Bayingol", "northwest"),
    ("sh-minhang", "Shanghai Minhang", "east"),
    ("hz-yuhang", "Hangzhou Yuhang", "east"),
    ("sz-baoan", "Shenzhen Bao'an", "south"),
    ("tj-dongli", "Tianjin Dongli", "north"),
    ("jn-changqing", "Jinan Changqing", "east"),
    ("cs-changsha", "Changsha Changsha County", "central"),
    ("km-chenggong", "Kunming Chenggong", "southwest"),
]
# Xinjiang keeps its own local time in daily use; the rest of the mainland is on China Standard Time.
XINJIANG = {"urc-midong", "kashi-shule", "yining-yining", "korla-kuerle"}
CENTRALS = [
    ("central-sh-dc1", "Central cluster Shanghai DC1", "east"),
    ("central-bj-dc2", "Central cluster Beijing DC2", "north"),
    ("central-cd-dr", "Central cluster Chengdu (disaster recovery)", "southwest"),
]
GPUS = [
    ("NVIDIA T4", 1, "535.183.01"),
    ("NVIDIA A2", 1, "550.90.07"),
    ("NVIDIA L4", 1, "550.90.07"),
    ("NVIDIA A10", 1, "535.183.01"),
    ("NVIDIA L4", 2, "550.90.07"),
]
GPU_HOSTS = ["Inspur NF5260M6", "Dell PowerEdge R750xa", "Lenovo ThinkEdge SE450", "Advantech MIC-770"]
EDGE_HOSTS = ["Huawei TaiShan 200", "Dell PowerEdge XR11", "Lenovo ThinkEdge SE350"]


# The KubeEdge host cluster of each region's transfer centers (their boxes join it as edge nodes).
REGION_HOSTS = {
    "north": "kubeedge-north",
    "northeast": "kubeedge-north",
    "east": "kubeedge-east",
    "central": "kubeedge-central",
    "south": "kubeedge-south",
    "southwest": "kubeedge-west",
    "northwest": "kubeedge-west",
}
HOST_REGIONS = {
    "kubeedge-north": "north",
    "kubeedge-east": "east",
    "kubeedge-central": "central",
    "kubeedge-south": "south",
    "kubeedge-west": "west",
}


def cluster_yaml(name: str, role: str, region: str) -> str:
    return "\n".join(
        [
            "apiVersion: edgefleet.io/v1",
            "kind: Cluster",
            "metadata:",
            f"  name: {name}",
            "spec:",
            f"  role: {role}",
            f"  context: {name}",
            f"  region: {region}",
        ]
    )


def site_yaml(sid: str, name: str, region: str, kind: str, tz: str, boxes: list[str]) -> str:
    placement = (
        [f"  cluster: {REGION_HOSTS[region]}", f"  nodeGroup: {sid}"]
        if kind == "transfer-center"
        else [f"  cluster: {sid}"]
    )
    lines = [
        "apiVersion: edgefleet.io/v1",
        "kind: Site",
        "metadata:",
        f"  name: {sid}",
        "  labels:",
        f"    region: {region}",
        "spec:",
        f"  kind: {kind}",
        f'  displayName: "{name}{" Transfer Center" if kind == "transfer-center" else ""}"',
        f"  region: {region}",
        f"  timezone: {tz}",
        *placement,
        "  heartbeat:",
        "    intervalSeconds: 10",
        "    missedBeats: 3",
        "  boxes:",
        *boxes,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    rng = random.Random(20261128)
    out = Path(__file__).resolve().parent.parent / "sites"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.yaml"):
        old.unlink()
    assert len(CENTERS) == 100, len(CENTERS)
    for sid, name, region in CENTERS:
        edge = rng.randint(2, 4)
        gpu = rng.randint(15, 19) if edge < 4 else rng.randint(14, 18)
        gpu_model, gpu_count, driver = rng.choice(GPUS)
        host = rng.choice(GPU_HOSTS)
        boxes = []
        for i in range(1, edge + 1):
            boxes += [
                f"    - name: {sid}-edge-{i:02d}",
                "      role: edge-node",
                f"      model: {rng.choice(EDGE_HOSTS)}",
            ]
        for i in range(1, gpu + 1):
            boxes += [
                f"    - name: {sid}-gpu-{i:02d}",
                "      role: gpu-box",
                f"      model: {host}",
                "      gpu:",
                f"        model: {gpu_model}",
                f"        count: {gpu_count}",
                f'        driverVersion: "{driver}"',
                "      labels:",
                f"        line: sorting-line-{(i - 1) // 4 + 1}",
            ]
        tz = "Asia/Urumqi" if sid in XINJIANG else "Asia/Shanghai"
        (out / f"{sid}.yaml").write_text(site_yaml(sid, name, region, "transfer-center", tz, boxes))
    for sid, name, region in CENTRALS:
        boxes = []
        for i in range(1, 4):
            boxes += [f"    - name: {sid}-cp-{i:02d}", "      role: cluster-node", "      model: Dell PowerEdge R660"]
        for i in range(1, 4):
            boxes += [
                f"    - name: {sid}-worker-{i:02d}",
                "      role: cluster-node",
                "      model: Dell PowerEdge R760",
            ]
        # A central site is its whole cluster: both in one file, so that removing the site removes its cluster.
        site = site_yaml(sid, name, region, "central", "Asia/Shanghai", boxes)
        (out / f"{sid}.yaml").write_text(site + "---\n" + cluster_yaml(sid, "central", region) + "\n")
    hosts = [cluster_yaml(host, "kubeedge-host", region) for host, region in HOST_REGIONS.items()]
    (out / "clusters.yaml").write_text("\n---\n".join(hosts) + "\n")


if __name__ == "__main__":
    main()
