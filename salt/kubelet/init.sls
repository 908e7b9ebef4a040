{#- The kubelet: registers with the master through nginx (https://MASTER_IP:443) using the
    shared kubelet client cert; containerd runs its pods. #}
{%- from "map.jinja" import kube with context %}
{%- from "systemd.jinja" import unit with context %}
{%- from "kubeconfig.jinja" import kubeconfig with context %}
{%- set certs = kube.cert_dir %}
{%- set kubeconfig_path = kube.kubelet_dir ~ '/kubeconfig' %}
{%- set config_path = kube.kubelet_dir ~ '/config.yaml' %}
{%- set config = {
  'apiVersion': 'kubelet.config.k8s.io/v1beta1',
  'kind': 'KubeletConfiguration',
  'containerRuntimeEndpoint': 'unix://' ~ kube.containerd_socket,
  'cgroupDriver': 'cgroupfs',
  'failCgroupV1': False,
  'failSwapOn': False,
  'authentication': {
    'anonymous': {'enabled': False},
    'webhook': {'enabled': True},
    'x509': {'clientCAFile': certs ~ '/ca.crt'},
  },
  'authorization': {'mode': 'Webhook'},
  'readOnlyPort': 0,
  'clusterDomain': kube.dns_domain,
  'resolvConf': '/etc/resolv.conf',
  'rotateCertificates': False,
  'serverTLSBootstrap': False,
  'protectKernelDefaults': False,
  'evictionHard': {
    'memory.available': '100Mi',
    'nodefs.available': '5%',
    'imagefs.available': '5%',
  },
} %}
{%- if kube.cluster_dns %}
{%-   do config.update({'clusterDNS': [kube.dns_server_ip]}) %}
{%- endif %}
{%- set args = ['--config=' ~ config_path, '--kubeconfig=' ~ kubeconfig_path, '--v=2'] %}
{%- if kube.node_ip %}
{%-   do args.append('--node-ip=' ~ kube.node_ip) %}
{%- endif %}

include:
  - kube-pki
  - kube-binaries
  - containerd
  - cni
  - node-images

kubelet-kubeconfig:
  file.managed:
    - name: {{ kubeconfig_path }}
    - makedirs: True
    - mode: "0600"
    - contents: {{ kubeconfig('kubelet', kube.apiserver_url, certs ~ '/kubelet.crt',
        certs ~ '/kubelet.key', certs ~ '/ca.crt') | tojson }}

kubelet-config:
  file.managed:
    - name: {{ config_path }}
    - makedirs: True
    - mode: "0644"
    - contents: {{ config | yaml(False) | tojson }}

kubelet-unit:
  file.managed:
    - name: /etc/systemd/system/kubelet.service
    - mode: "0644"
    - contents: {{ unit('Kubernetes node agent', kube.bin_dir ~ '/kubelet', args,
        after=['containerd.service']) | tojson }}

kubelet:
  service.running:
    - enable: True
    - require:
      - service: containerd
      - file: cni-bridge-config
{%- for image in kube.images %}
      - cmd: node-image-{{ image.ref }}
{%- endfor %}
    - watch:
      - file: kubelet-unit
      - file: kubelet-config
      - file: kubelet-kubeconfig
      - file: kube-binary-kubelet
      - file: kube-pki-kubelet.crt
      - file: kube-pki-kubelet.key
      - file: kube-pki-ca.crt
