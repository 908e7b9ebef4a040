{#- etcd for the master: data on the master's persistent disk, clients on loopback only. #}
{%- from "map.jinja" import kube with context %}
{%- from "systemd.jinja" import unit with context %}
{%- set peer = 'http://127.0.0.1:2380' %}
{%- set client = 'http://127.0.0.1:2379' %}

include:
  - kube-binaries

etcd-user:
  user.present:
    - name: etcd
    - system: True
    - home: {{ kube.etcd_data_dir }}
    - createhome: False
    - shell: /usr/sbin/nologin

# configure-vm.sh mounts (or links) the disk at /mnt/master-pd before salt runs.
etcd-data-dir:
  file.directory:
    - name: {{ kube.etcd_data_dir }}
    - user: etcd
    - group: etcd
    - mode: "0700"
    - makedirs: True
    - require:
      - user: etcd-user

etcd-unit:
  file.managed:
    - name: /etc/systemd/system/etcd.service
    - mode: "0644"
    - contents: {{ unit('etcd, the Kubernetes datastore', kube.bin_dir ~ '/etcd', [
        '--name=master',
        '--data-dir=' ~ kube.etcd_data_dir,
        '--listen-client-urls=' ~ client,
        '--advertise-client-urls=' ~ client,
        '--listen-peer-urls=' ~ peer,
        '--initial-advertise-peer-urls=' ~ peer,
        '--initial-cluster=master=' ~ peer,
        '--initial-cluster-state=new',
        '--initial-cluster-token=' ~ kube.cluster_name,
      ], after=['network.target'], user='etcd', limit_nofile=65536) | tojson }}

etcd:
  service.running:
    - enable: True
    - require:
      - file: etcd-data-dir
    - watch:
      - file: etcd-unit
      - file: kube-binary-etcd
