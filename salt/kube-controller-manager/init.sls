{#- kube-controller-manager, talking to the local apiserver with its own client cert. Pod CIDRs
    are assigned by kube-up (GCE routes), so the controller manager allocates none. #}
{%- from "map.jinja" import kube with context %}
{%- from "systemd.jinja" import unit with context %}
{%- from "kubeconfig.jinja" import kubeconfig with context %}
{%- set certs = kube.cert_dir %}
{%- set config = certs ~ '/kube-controller-manager.kubeconfig' %}

include:
  - kube-pki
  - kube-binaries
  - kube-apiserver

kube-controller-manager-kubeconfig:
  file.managed:
    - name: {{ config }}
    - mode: "0600"
    - contents: {{ kubeconfig('system:kube-controller-manager', kube.apiserver_url,
        certs ~ '/kube-controller-manager.crt', certs ~ '/kube-controller-manager.key',
        certs ~ '/ca.crt') | tojson }}

kube-controller-manager-unit:
  file.managed:
    - name: /etc/systemd/system/kube-controller-manager.service
    - mode: "0644"
    - contents: {{ unit('Kubernetes controller manager', kube.bin_dir ~ '/kube-controller-manager', [
        '--kubeconfig=' ~ config,
        '--authentication-kubeconfig=' ~ config,
        '--authorization-kubeconfig=' ~ config,
        '--bind-address=127.0.0.1',
        '--cluster-name=' ~ kube.cluster_name,
        '--cluster-cidr=' ~ kube.cluster_cidr,
        '--service-cluster-ip-range=' ~ kube.service_cidr,
        '--allocate-node-cidrs=false',
        '--root-ca-file=' ~ certs ~ '/ca.crt',
        '--service-account-private-key-file=' ~ certs ~ '/service-account.key',
        '--use-service-account-credentials=true',
        '--leader-elect=false',
        '--profiling=false',
        '--v=2',
      ], after=['kube-apiserver.service']) | tojson }}

kube-controller-manager:
  service.running:
    - enable: True
    - require:
      - service: kube-apiserver
    - watch:
      - file: kube-controller-manager-unit
      - file: kube-controller-manager-kubeconfig
      - file: kube-binary-kube-controller-manager
      - file: kube-pki-kube-controller-manager.crt
      - file: kube-pki-kube-controller-manager.key
      - file: kube-pki-service-account.key
      - file: kube-pki-ca.crt
