{#- kube-proxy in iptables mode. Its conntrack and timeout settings are 0 ("leave as is"):
    nf_conntrack_max is read-only inside a network namespace, and VMs must not change the host
    kernel's settings. #}
{%- from "map.jinja" import kube with context %}
{%- from "systemd.jinja" import unit with context %}
{%- from "kubeconfig.jinja" import kubeconfig with context %}
{%- set certs = kube.cert_dir %}
{%- set kubeconfig_path = kube.kube_proxy_dir ~ '/kubeconfig' %}
{%- set config_path = kube.kube_proxy_dir ~ '/config.yaml' %}
{%- set config = {
  'apiVersion': 'kubeproxy.config.k8s.io/v1alpha1',
  'kind': 'KubeProxyConfiguration',
  'clientConnection': {'kubeconfig': kubeconfig_path},
  'mode': 'iptables',
  'clusterCIDR': kube.cluster_cidr,
  'conntrack': {
    'maxPerCore': 0,
    'min': 0,
    'tcpEstablishedTimeout': '0s',
    'tcpCloseWaitTimeout': '0s',
  },
  'metricsBindAddress': '127.0.0.1:10249',
} %}

include:
  - kube-pki
  - kube-binaries

kube-proxy-kubeconfig:
  file.managed:
    - name: {{ kubeconfig_path }}
    - makedirs: True
    - mode: "0600"
    - contents: {{ kubeconfig('system:kube-proxy', kube.apiserver_url, certs ~ '/kube-proxy.crt',
        certs ~ '/kube-proxy.key', certs ~ '/ca.crt') | tojson }}

kube-proxy-config:
  file.managed:
    - name: {{ config_path }}
    - makedirs: True
    - mode: "0644"
    - contents: {{ config | yaml(False) | tojson }}

kube-proxy-unit:
  file.managed:
    - name: /etc/systemd/system/kube-proxy.service
    - mode: "0644"
    - contents: {{ unit('Kubernetes network proxy', kube.bin_dir ~ '/kube-proxy',
        ['--config=' ~ config_path, '--v=2'], after=['network.target']) | tojson }}

kube-proxy:
  service.running:
    - enable: True
    - watch:
      - file: kube-proxy-unit
      - file: kube-proxy-config
      - file: kube-proxy-kubeconfig
      - file: kube-binary-kube-proxy
      - file: kube-pki-kube-proxy.crt
      - file: kube-pki-kube-proxy.key
      - file: kube-pki-ca.crt
