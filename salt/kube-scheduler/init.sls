{#- kube-scheduler, talking to the local apiserver with its own client cert. #}
{%- from "map.jinja" import kube with context %}
{%- from "systemd.jinja" import unit with context %}
{%- from "kubeconfig.jinja" import kubeconfig with context %}
{%- set certs = kube.cert_dir %}
{%- set config = certs ~ '/kube-scheduler.kubeconfig' %}

include:
  - kube-pki
  - kube-binaries
  - kube-apiserver

kube-scheduler-kubeconfig:
  file.managed:
    - name: {{ config }}
    - mode: "0600"
    - contents: {{ kubeconfig('system:kube-scheduler', kube.apiserver_url,
        certs ~ '/kube-scheduler.crt', certs ~ '/kube-scheduler.key',
        certs ~ '/ca.crt') | tojson }}

kube-scheduler-unit:
  file.managed:
    - name: /etc/systemd/system/kube-scheduler.service
    - mode: "0644"
    - contents: {{ unit('Kubernetes scheduler', kube.bin_dir ~ '/kube-scheduler', [
        '--kubeconfig=' ~ config,
        '--authentication-kubeconfig=' ~ config,
        '--authorization-kubeconfig=' ~ config,
        '--bind-address=127.0.0.1',
        '--leader-elect=false',
        '--profiling=false',
        '--v=2',
      ], after=['kube-apiserver.service']) | tojson }}

kube-scheduler:
  service.running:
    - enable: True
    - require:
      - service: kube-apiserver
    - watch:
      - file: kube-scheduler-unit
      - file: kube-scheduler-kubeconfig
      - file: kube-binary-kube-scheduler
      - file: kube-pki-kube-scheduler.crt
      - file: kube-pki-kube-scheduler.key
      - file: kube-pki-ca.crt
