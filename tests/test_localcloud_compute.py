"""Round trips of every served Compute method through google-cloud-compute (REST transport)."""

from __future__ import annotations

import urllib.request

from google.api_core import exceptions
from google.cloud import compute_v1

from tests.localcloud_support import (
    REGION,
    ZONE,
    LocalCloud,
    create_instance,
    http,
    instance_body,
    make_network,
    properties,
    wait_for,
)

pytest_plugins = ["tests.localcloud_fixtures"]


def test_projects_zones_regions_machine_types(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    proj = c.projects.get(project=project)
    assert proj.name == project and proj.id > 0
    assert proj.self_link == f"{lc.endpoints.compute}/compute/v1/projects/{project}"
    assert {q.metric for q in proj.quotas} >= {"FIREWALLS", "ROUTES", "NETWORKS"}

    meta = compute_v1.Metadata(
        fingerprint=proj.common_instance_metadata.fingerprint,
        items=[compute_v1.Items(key="team", value="blue")],
    )
    c.projects.set_common_instance_metadata(project=project, metadata_resource=meta).result(30)
    assert [
        (i.key, i.value) for i in c.projects.get(project=project).common_instance_metadata.items
    ] == [("team", "blue")]

    zones = [z.name for z in c.zones.list(project=project)]
    assert ZONE in zones and c.zones.get(project=project, zone=ZONE).region.endswith(REGION)
    region = c.regions.get(project=project, region=REGION)
    assert f"{ZONE}" in " ".join(region.zones)
    assert {q.metric for q in region.quotas} >= {"CPUS", "INSTANCES", "IN_USE_ADDRESSES"}
    assert REGION in [r.name for r in c.regions.list(project=project)]

    mt = c.machine_types.get(project=project, zone=ZONE, machine_type="n1-standard-2")
    assert (mt.guest_cpus, mt.memory_mb) == (2, 7680)
    names = [m.name for m in c.machine_types.list(project=project, zone=ZONE)]
    assert {"e2-standard-2", "e2-micro", "n1-standard-1"} <= set(names)
    try:
        c.machine_types.get(project=project, zone=ZONE, machine_type="z9-giant")
        raise AssertionError("unknown machine type answered")
    except exceptions.NotFound:
        pass


def test_networks_subnetworks(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    c.networks.insert(
        project=project,
        network_resource=compute_v1.Network(name="legacy", I_pv4_range="10.210.0.0/16"),
    ).result(30)
    legacy = c.networks.get(project=project, network="legacy")
    assert (legacy.I_pv4_range, legacy.gateway_i_pv4) == ("10.210.0.0/16", "10.210.0.1")

    c.networks.insert(
        project=project,
        network_resource=compute_v1.Network(name="auto", auto_create_subnetworks=True),
    ).result(30)
    auto = c.networks.get(project=project, network="auto")
    assert len(auto.subnetworks) == 5
    sub = c.subnetworks.get(project=project, region=REGION, subnetwork="auto")
    assert (sub.ip_cidr_range, sub.gateway_address) == ("10.128.0.0/20", "10.128.0.1")

    make_network(c, project, "custom", "10.211.0.0/24")
    subs = [s.name for s in c.subnetworks.list(project=project, region=REGION)]
    assert sorted(subs) == ["auto", "custom-sub"]
    told = lc.admin("GET", "backend")["subnets"]
    assert told["10.210.0.0/16"] == "10.210.0.1" and told["10.211.0.0/24"] == "10.211.0.1"

    nets = {n.name for n in c.networks.list(project=project)}
    assert nets == {"legacy", "auto", "custom"}
    c.subnetworks.delete(project=project, region=REGION, subnetwork="custom-sub").result(30)
    for name in ("legacy", "auto", "custom"):
        c.networks.delete(project=project, network=name).result(30)
    assert list(c.networks.list(project=project)) == []
    assert "10.211.0.0/24" not in lc.admin("GET", "backend")["subnets"]


def test_firewalls_and_routes_reach_backend(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project)
    fw = compute_v1.Firewall(
        name=f"{project}-ssh",
        network="global/networks/net",
        source_ranges=["0.0.0.0/0"],
        allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["22"])],
        target_tags=["node"],
    )
    c.firewalls.insert(project=project, firewall_resource=fw).result(30)
    got = c.firewalls.get(project=project, firewall=f"{project}-ssh")
    assert (got.direction, got.priority, list(got.target_tags)) == ("INGRESS", 1000, ["node"])
    assert f"{project}-ssh" in lc.admin("GET", "backend")["firewalls"]

    patch = compute_v1.Firewall(
        allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["22", "443"])]
    )
    c.firewalls.patch(project=project, firewall=f"{project}-ssh", firewall_resource=patch).result(
        30
    )
    assert list(c.firewalls.get(project=project, firewall=f"{project}-ssh").allowed[0].ports) == [
        "22",
        "443",
    ]
    update = compute_v1.Firewall(
        name=f"{project}-ssh",
        source_ranges=["10.0.0.0/8"],
        allowed=[compute_v1.Allowed(I_p_protocol="udp")],
    )
    c.firewalls.update(project=project, firewall=f"{project}-ssh", firewall_resource=update).result(
        30
    )
    got = c.firewalls.get(project=project, firewall=f"{project}-ssh")
    assert (got.allowed[0].I_p_protocol, list(got.source_ranges), list(got.target_tags)) == (
        "udp",
        ["10.0.0.0/8"],
        [],
    )

    vm = create_instance(c, project, "router-vm", can_ip_forward=True)
    route = compute_v1.Route(
        name=f"{project}-pods",
        network="global/networks/net",
        dest_range="10.244.7.0/24",
        next_hop_instance=vm.self_link,
    )
    c.routes.insert(project=project, route_resource=route).result(30)
    assert [r.name for r in c.routes.list(project=project)] == [f"{project}-pods"]
    got_route = c.routes.get(project=project, route=f"{project}-pods")
    assert (got_route.dest_range, got_route.next_hop_instance) == ("10.244.7.0/24", vm.self_link)
    ip = vm.network_interfaces[0].network_i_p
    assert ["10.244.7.0/24", ip] in lc.admin("GET", "backend")["routes"]

    c.routes.delete(project=project, route=f"{project}-pods").result(30)
    c.firewalls.delete(project=project, firewall=f"{project}-ssh").result(30)
    assert ["10.244.7.0/24", ip] not in lc.admin("GET", "backend")["routes"]
    assert f"{project}-ssh" not in lc.admin("GET", "backend")["firewalls"]


def test_addresses_static_nat(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project, cidr="10.98.0.0/24")
    c.addresses.insert(
        project=project, region=REGION, address_resource=compute_v1.Address(name="master-ip")
    ).result(30)
    addr = c.addresses.get(project=project, region=REGION, address="master-ip")
    assert addr.status == "RESERVED" and addr.address.startswith("10.98.0.")
    c.global_addresses.insert(
        project=project, address_resource=compute_v1.Address(name="lb")
    ).result(30)
    assert c.global_addresses.get(project=project, address="lb").address.startswith("198.51.100.")
    assert [a.name for a in c.global_addresses.list(project=project)] == ["lb"]

    body = compute_v1.Instance(
        name="master",
        machine_type=f"zones/{ZONE}/machineTypes/e2-standard-2",
        network_interfaces=[
            compute_v1.NetworkInterface(
                network="global/networks/net",
                access_configs=[compute_v1.AccessConfig(name="External NAT", nat_i_p=addr.address)],
            )
        ],
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=(compute_v1.AttachedDiskInitializeParams(source_image="debian")),
            )
        ],
    )
    c.instances.insert(project=project, zone=ZONE, instance_resource=body).result(30)
    vm = c.instances.get(project=project, zone=ZONE, instance="master")
    nic = vm.network_interfaces[0]
    assert nic.network_i_p == addr.address == nic.access_configs[0].nat_i_p
    used = c.addresses.get(project=project, region=REGION, address="master-ip")
    assert used.status == "IN_USE" and used.users == [vm.self_link]
    try:
        c.addresses.delete(project=project, region=REGION, address="master-ip")
        raise AssertionError("deleted an address in use")
    except exceptions.BadRequest as err:
        assert "already being used" in str(err)
    c.instances.delete(project=project, zone=ZONE, instance="master").result(30)
    assert c.addresses.get(project=project, region=REGION, address="master-ip").status == "RESERVED"
    c.addresses.delete(project=project, region=REGION, address="master-ip").result(30)
    c.global_addresses.delete(project=project, address="lb").result(30)
    assert list(c.addresses.list(project=project, region=REGION)) == []


def test_instance_lifecycle(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project, cidr="10.97.0.0/24")
    vm = create_instance(
        c,
        project,
        "vm-1",
        external=True,
        labels={"role": "node"},
        tags=compute_v1.Tags(items=["node"]),
    )
    assert vm.status == "RUNNING"
    nic = vm.network_interfaces[0]
    assert nic.network_i_p == "10.97.0.2" and nic.access_configs[0].nat_i_p == nic.network_i_p
    assert (
        vm.self_link
        == f"{lc.endpoints.compute}/compute/v1/projects/{project}/zones/{ZONE}/instances/vm-1"
    )
    boot = c.disks.get(project=project, zone=ZONE, disk="vm-1")
    assert boot.status == "READY" and boot.users == [vm.self_link] and boot.size_gb == 10

    c.instances.stop(project=project, zone=ZONE, instance="vm-1").result(30)
    assert c.instances.get(project=project, zone=ZONE, instance="vm-1").status == "TERMINATED"
    c.instances.start(project=project, zone=ZONE, instance="vm-1").result(30)
    assert c.instances.get(project=project, zone=ZONE, instance="vm-1").status == "RUNNING"
    c.instances.reset(project=project, zone=ZONE, instance="vm-1").result(30)
    serial = c.instances.get_serial_port_output(project=project, zone=ZONE, instance="vm-1")
    assert serial.contents.count("booted") == 3 and "powered off" in serial.contents
    later = c.instances.get_serial_port_output(
        request={"project": project, "zone": ZONE, "instance": "vm-1", "start": serial.next_}
    )
    assert later.contents == "" and later.start == serial.next_

    vm = c.instances.get(project=project, zone=ZONE, instance="vm-1")
    c.instances.set_metadata(
        project=project,
        zone=ZONE,
        instance="vm-1",
        metadata_resource=(
            compute_v1.Metadata(
                fingerprint=vm.metadata.fingerprint, items=[compute_v1.Items(key="k", value="v")]
            )
        ),
    ).result(30)
    c.instances.set_labels(
        project=project,
        zone=ZONE,
        instance="vm-1",
        instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
            label_fingerprint=vm.label_fingerprint, labels={"role": "master"}
        ),
    ).result(30)
    c.instances.set_tags(
        project=project,
        zone=ZONE,
        instance="vm-1",
        tags_resource=compute_v1.Tags(fingerprint=vm.tags.fingerprint, items=["master", "web"]),
    ).result(30)
    after = c.instances.get(project=project, zone=ZONE, instance="vm-1")
    assert [(i.key, i.value) for i in after.metadata.items] == [("k", "v")]
    assert dict(after.labels) == {"role": "master"} and list(after.tags.items) == ["master", "web"]
    assert after.metadata.fingerprint != vm.metadata.fingerprint
    assert after.label_fingerprint != vm.label_fingerprint
    assert after.tags.fingerprint != vm.tags.fingerprint

    c.disks.insert(
        project=project, zone=ZONE, disk_resource=compute_v1.Disk(name="data", size_gb=20)
    ).result(30)
    assert c.disks.get(project=project, zone=ZONE, disk="data").status == "READY"
    c.instances.attach_disk(
        project=project,
        zone=ZONE,
        instance="vm-1",
        attached_disk_resource=compute_v1.AttachedDisk(
            source=f"zones/{ZONE}/disks/data", device_name="etcd"
        ),
    ).result(30)
    attached = c.instances.get(project=project, zone=ZONE, instance="vm-1").disks
    assert [d.device_name for d in attached] == ["persistent-disk-0", "etcd"]
    assert lc.admin("GET", "backend")["disks"][f"{ZONE}/vm-1"] == ["etcd"]
    assert sorted(d.name for d in c.disks.list(project=project, zone=ZONE)) == ["data", "vm-1"]

    c.instances.delete(project=project, zone=ZONE, instance="vm-1").result(30)
    assert list(c.instances.list(project=project, zone=ZONE)) == []
    remaining = list(c.disks.list(project=project, zone=ZONE))
    assert [d.name for d in remaining] == ["data"] and not remaining[0].users
    c.disks.delete(project=project, zone=ZONE, disk="data").result(30)


def test_bulk_insert_and_guest_attributes(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project)
    bulk = compute_v1.BulkInsertInstanceResource(
        count=12,
        name_pattern="node-###",
        instance_properties=properties(
            metadata=compute_v1.Metadata(
                items=[compute_v1.Items(key="enable-guest-attributes", value="TRUE")]
            )
        ),
    )
    op = c.instances.bulk_insert(
        project=project, zone=ZONE, bulk_insert_instance_resource_resource=bulk
    )
    op.result(timeout=30)
    vms = list(c.instances.list(project=project, zone=ZONE))
    assert [v.name for v in vms] == [f"node-{i:03d}" for i in range(1, 13)]
    assert len({v.network_interfaces[0].network_i_p for v in vms}) == 12
    assert {v.status for v in vms} == {"RUNNING"}

    lc.admin(
        "POST",
        "metadata-aliases",
        {"127.0.0.1": f"projects/{project}/zones/{ZONE}/instances/node-001"},
    )
    host, port = lc.endpoints.metadata_address
    status, _ = http(
        f"http://{host}:{port}/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519",
        "PUT",
        None,
        {"Metadata-Flavor": "Google"},
    )
    assert status == 200  # an empty value first, then the real one
    req = urllib.request.Request(
        f"http://{host}:{port}/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519",
        data=b"ssh-ed25519 AAAAC3Nza",
        method="PUT",
        headers={"Metadata-Flavor": "Google"},
    )
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
    attrs = c.instances.get_guest_attributes(
        request={
            "project": project,
            "zone": ZONE,
            "instance": "node-001",
            "query_path": "hostkeys/",
        }
    )
    assert [(i.namespace, i.key, i.value) for i in attrs.query_value.items] == [
        ("hostkeys", "ssh-ed25519", "ssh-ed25519 AAAAC3Nza")
    ]
    one = c.instances.get_guest_attributes(
        request={
            "project": project,
            "zone": ZONE,
            "instance": "node-001",
            "variable_key": "hostkeys/ssh-ed25519",
        }
    )
    assert one.variable_value == "ssh-ed25519 AAAAC3Nza"
    try:
        c.instances.get_guest_attributes(
            request={
                "project": project,
                "zone": ZONE,
                "instance": "node-002",
                "variable_key": "hostkeys/ssh-ed25519",
            }
        )
        raise AssertionError("guest attribute of another instance answered")
    except exceptions.NotFound:
        pass
    lc.admin("POST", "metadata-aliases", {})


def test_templates_and_group_managers(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project)
    c.instance_templates.insert(
        project=project,
        instance_template_resource=(
            compute_v1.InstanceTemplate(
                name="node-tpl", properties=properties(labels={"role": "node"})
            )
        ),
    ).result(30)
    assert (
        c.instance_templates.get(
            project=project, instance_template="node-tpl"
        ).properties.machine_type
        == "e2-small"
    )
    assert [t.name for t in c.instance_templates.list(project=project)] == ["node-tpl"]

    igm = compute_v1.InstanceGroupManager(
        name="nodes",
        base_instance_name="node",
        target_size=3,
        instance_template=f"projects/{project}/global/instanceTemplates/node-tpl",
    )
    c.instance_group_managers.insert(
        project=project, zone=ZONE, instance_group_manager_resource=igm
    ).result(30)
    got = c.instance_group_managers.get(project=project, zone=ZONE, instance_group_manager="nodes")
    assert got.target_size == 3 and got.status.is_stable and got.current_actions.none == 3
    managed = list(
        c.instance_group_managers.list_managed_instances(
            project=project, zone=ZONE, instance_group_manager="nodes"
        )
    )
    assert len(managed) == 3 and all(m.current_action == "NONE" for m in managed)
    names = {m.instance.rsplit("/", 1)[-1] for m in managed}
    assert all(n.startswith("node-") and len(n) == len("node-") + 4 for n in names)
    vm = c.instances.get(project=project, zone=ZONE, instance=sorted(names)[0])
    assert dict(vm.labels) == {"role": "node"}
    assert any(
        i.key == "created-by" and i.value.endswith("/instanceGroupManagers/nodes")
        for i in vm.metadata.items
    )

    c.instance_group_managers.resize(
        project=project, zone=ZONE, instance_group_manager="nodes", size=5
    ).result(30)
    assert len(list(c.instances.list(project=project, zone=ZONE))) == 5
    c.instance_group_managers.resize(
        project=project, zone=ZONE, instance_group_manager="nodes", size=1
    ).result(30)
    left = {i.name for i in c.instances.list(project=project, zone=ZONE)}
    assert len(left) == 1 and left <= names  # the newest went first
    assert [g.name for g in c.instance_group_managers.list(project=project, zone=ZONE)] == ["nodes"]
    try:
        c.instance_templates.delete(project=project, instance_template="node-tpl")
        raise AssertionError("deleted a template in use")
    except exceptions.BadRequest:
        pass
    c.instance_group_managers.delete(
        project=project, zone=ZONE, instance_group_manager="nodes"
    ).result(30)
    assert list(c.instances.list(project=project, zone=ZONE)) == []
    assert list(c.instance_group_managers.list(project=project, zone=ZONE)) == []
    c.instance_templates.delete(project=project, instance_template="node-tpl").result(30)


def test_operations_get_wait_list_delete(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    lc.admin(
        "POST",
        "faults",
        {"rules": [{"api": "compute.*.insert", "fault": "slow_operation", "seconds": 0.6}]},
    )
    op = c.networks.insert(
        project=project,
        network_resource=compute_v1.Network(name="net", auto_create_subnetworks=False),
    )
    first = c.global_operations.get(project=project, operation=op.name)
    assert first.status.name in ("PENDING", "RUNNING")
    done = c.global_operations.wait(project=project, operation=op.name)
    assert done.status.name == "DONE" and done.progress == 100 and done.end_time
    assert done.target_link.endswith(f"projects/{project}/global/networks/net")
    assert op.name in [o.name for o in c.global_operations.list(project=project)]

    sub_op = c.subnetworks.insert(
        project=project,
        region=REGION,
        subnetwork_resource=(
            compute_v1.Subnetwork(
                name="s", network="global/networks/net", ip_cidr_range="10.96.0.0/24"
            )
        ),
    )
    assert (
        c.region_operations.wait(project=project, region=REGION, operation=sub_op.name).status.name
        == "DONE"
    )
    assert [o.name for o in c.region_operations.list(project=project, region=REGION)] == [
        sub_op.name
    ]
    vm_op = c.instances.insert(project=project, zone=ZONE, instance_resource=instance_body("w"))
    waited = c.zone_operations.wait(project=project, zone=ZONE, operation=vm_op.name)
    assert waited.status.name == "DONE" and waited.operation_type == "insert"
    assert vm_op.name in [o.name for o in c.zone_operations.list(project=project, zone=ZONE)]
    assert wait_for(
        lambda: c.instances.get(project=project, zone=ZONE, instance="w").status == "RUNNING"
    )
    c.zone_operations.delete(project=project, zone=ZONE, operation=vm_op.name)
    try:
        c.zone_operations.get(project=project, zone=ZONE, operation=vm_op.name)
        raise AssertionError("deleted operation still answers")
    except exceptions.NotFound:
        pass
    c.region_operations.delete(project=project, region=REGION, operation=sub_op.name)
    c.global_operations.delete(project=project, operation=op.name)
    assert list(c.global_operations.list(project=project)) == []
