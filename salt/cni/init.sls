{#- Pod networking: a cbr0 bridge with host-local addresses from this node's pod CIDR (the
    `cbr-cidr` grain); kube-up routes each node's CIDR to it (GCE routes). Only per-network-
    namespace kernel settings are touched. #}
{%- from "map.jinja" import kube with context %}
{%- set bridge = {
  'cniVersion': '0.4.0',
  'name': 'cbr0',
  'plugins': [
    {
      'type': 'bridge',
      'bridge': 'cbr0',
      'isGateway': True,
      'ipMasq': False,
      'hairpinMode': True,
      'ipam': {
        'type': 'host-local',
        'ranges': [[{'subnet': kube.pod_cidr}]],
        'routes': [{'dst': '0.0.0.0/0'}],
      },
    },
    {'type': 'portmap', 'capabilities': {'portMappings': True}},
  ],
} %}
{%- set loopback = {'cniVersion': '0.4.0', 'name': 'lo', 'type': 'loopback'} %}

include:
  - base

cni-bridge-config:
  file.managed:
    - name: {{ kube.cni_conf_dir }}/10-cbr0.conflist
    - makedirs: True
    - mode: "0644"
    - contents: {{ bridge | tojson(indent=2) | tojson }}

cni-loopback-config:
  file.managed:
    - name: {{ kube.cni_conf_dir }}/99-loopback.conf
    - makedirs: True
    - mode: "0644"
    - contents: {{ loopback | tojson(indent=2) | tojson }}

# br_netfilter is a module on Debian's cloud kernel and built in elsewhere (no modprobe there).
cni-br-netfilter:
  cmd.run:
    - name: modprobe br_netfilter
    - unless: test -d /proc/sys/net/bridge

cni-ip-forward:
  sysctl.present:
    - name: net.ipv4.ip_forward
    - value: 1

cni-bridge-nf-call-iptables:
  sysctl.present:
    - name: net.bridge.bridge-nf-call-iptables
    - value: 1
    - require:
      - cmd: cni-br-netfilter

# Pods keep their addresses inside the cluster network and leave it masqueraded behind the node
# (the master and other VMs need no routes back to pod CIDRs).
cni-pod-egress-masquerade:
  iptables.append:
    - table: nat
    - chain: POSTROUTING
    - source: {{ kube.pod_cidr }}
    - destination: "! {{ kube.cluster_cidr }}"
    - match: comment
    - comment: "kube-up: pod traffic leaving the cluster network"
    - jump: MASQUERADE
    - save: False
    - require:
      - pkg: kube-packages
