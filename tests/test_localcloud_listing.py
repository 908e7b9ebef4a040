"""List filters (the forms kube-up uses) and pagination (maxResults + pageToken)."""

from __future__ import annotations

import pytest
from google.cloud import compute_v1

from localcloud.compute.filters import compile_filter
from localcloud.errors import ApiError
from tests.localcloud_support import ZONE, LocalCloud, make_network, properties

pytest_plugins = ["tests.localcloud_fixtures"]

DOCS = [
    {
        "name": "kubernetes-master",
        "labels": {"role": "master"},
        "status": "RUNNING",
        "networkInterfaces": [{"networkIP": "10.0.0.2"}],
        "scheduling": {"preemptible": False},
        "cpus": 2,
    },
    {
        "name": "kubernetes-minion-ab12",
        "labels": {"role": "node", "pool": "a"},
        "status": "RUNNING",
        "networkInterfaces": [{"networkIP": "10.0.0.3"}],
        "scheduling": {"preemptible": True},
        "cpus": 4,
    },
    {
        "name": "kubernetes-minion-cd34",
        "labels": {"role": "node"},
        "status": "TERMINATED",
        "networkInterfaces": [{"networkIP": "10.0.0.4"}],
        "cpus": 8,
    },
    {"name": "other", "status": "RUNNING"},
]


def names(expr: str) -> list[str]:
    keep = compile_filter(expr)
    return [d["name"] for d in DOCS if keep(d)]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("", ["kubernetes-master", "kubernetes-minion-ab12", "kubernetes-minion-cd34", "other"]),
        ("name = other", ["other"]),
        ('name = "kubernetes-master"', ["kubernetes-master"]),
        (
            "name != other",
            ["kubernetes-master", "kubernetes-minion-ab12", "kubernetes-minion-cd34"],
        ),
        ("name = kubernetes-minion-*", ["kubernetes-minion-ab12", "kubernetes-minion-cd34"]),
        ("labels.role = node", ["kubernetes-minion-ab12", "kubernetes-minion-cd34"]),
        ("labels.pool:*", ["kubernetes-minion-ab12"]),
        ("name eq kubernetes-minion-.*", ["kubernetes-minion-ab12", "kubernetes-minion-cd34"]),
        (
            "name eq 'kubernetes-(master|minion-ab12)'",
            ["kubernetes-master", "kubernetes-minion-ab12"],
        ),
        ("name ne kubernetes-.*", ["other"]),
        ("name eq minion", []),  # RE2 must match the whole value
        ("(labels.role = node) (status = RUNNING)", ["kubernetes-minion-ab12"]),
        ("labels.role = node AND status = TERMINATED", ["kubernetes-minion-cd34"]),
        (
            "labels.role = master OR status = TERMINATED",
            ["kubernetes-master", "kubernetes-minion-cd34"],
        ),
        ("NOT labels.role = node", ["kubernetes-master", "other"]),
        ("networkInterfaces.networkIP = 10.0.0.3", ["kubernetes-minion-ab12"]),
        ("scheduling.preemptible = true", ["kubernetes-minion-ab12"]),
        ("cpus > 2", ["kubernetes-minion-ab12", "kubernetes-minion-cd34"]),
        ("cpus <= 4", ["kubernetes-master", "kubernetes-minion-ab12"]),
        ("name : MINION", ["kubernetes-minion-ab12", "kubernetes-minion-cd34"]),
    ],
)
def test_filter_expressions(expr: str, expected: list[str]) -> None:
    assert names(expr) == expected


@pytest.mark.parametrize("expr", ["name =", "(name = a", "name eq (", "= x", "name ~ x"])
def test_bad_filters_are_400(expr: str) -> None:
    with pytest.raises(ApiError) as err:
        names(expr)
    assert err.value.status == 400 and err.value.reason == "invalid"


def test_pagination_and_filters_through_the_client(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project)
    bulk = compute_v1.BulkInsertInstanceResource(
        count=130,
        name_pattern="kubernetes-minion-###",
        instance_properties=properties(labels={"role": "node"}),
    )
    c.instances.bulk_insert(
        project=project, zone=ZONE, bulk_insert_instance_resource_resource=bulk
    ).result(timeout=60)
    c.instances.bulk_insert(
        project=project,
        zone=ZONE,
        bulk_insert_instance_resource_resource=compute_v1.BulkInsertInstanceResource(
            count=1,
            name_pattern="kubernetes-master#",
            instance_properties=properties(labels={"role": "master"}),
        ),
    ).result(timeout=60)

    pager = c.instances.list(request={"project": project, "zone": ZONE, "max_results": 50})
    pages = list(pager.pages)
    assert [len(p.items) for p in pages] == [50, 50, 31]
    assert pages[0].next_page_token and not pages[-1].next_page_token
    all_names = [i.name for p in pages for i in p.items]
    assert all_names == sorted(all_names) and len(set(all_names)) == 131

    def listed(expr: str) -> list[str]:
        return [
            i.name
            for i in c.instances.list(request={"project": project, "zone": ZONE, "filter": expr})
        ]

    assert listed("labels.role = master") == ["kubernetes-master1"]
    assert len(listed("labels.role = node")) == 130
    assert listed("name = kubernetes-minion-007") == ["kubernetes-minion-007"]
    assert listed("name eq 'kubernetes-minion-00[1-3]'") == [
        "kubernetes-minion-001",
        "kubernetes-minion-002",
        "kubernetes-minion-003",
    ]

    status, body = lc.api("GET", f"projects/{project}/zones/{ZONE}/instances?pageToken=zzz")
    assert status == 400 and "pageToken" in body["error"]["message"]

    desc = c.instances.list(
        request={"project": project, "zone": ZONE, "max_results": 2, "order_by": "name desc"}
    )
    assert [i.name for i in next(iter(desc.pages)).items] == [
        "kubernetes-minion-130",
        "kubernetes-minion-129",
    ]

    managed = c.instance_group_managers
    c.instance_templates.insert(
        project=project,
        instance_template_resource=(compute_v1.InstanceTemplate(name="t", properties=properties())),
    ).result(timeout=30)
    managed.insert(
        project=project,
        zone=ZONE,
        instance_group_manager_resource=(
            compute_v1.InstanceGroupManager(
                name="g",
                base_instance_name="g",
                target_size=7,
                instance_template="global/instanceTemplates/t",
            )
        ),
    ).result(timeout=30)
    mpages = list(
        managed.list_managed_instances(
            request={
                "project": project,
                "zone": ZONE,
                "instance_group_manager": "g",
                "max_results": 3,
            }
        ).pages
    )
    assert [len(p.managed_instances) for p in mpages] == [3, 3, 1]
