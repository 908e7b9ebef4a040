{#- containerd + runc, configured for the kubelet. #}
{%- from "map.jinja" import kube with context %}
{%- set config %}{% include "containerd/config.toml.j2" %}{% endset %}

include:
  - base

containerd-config:
  file.managed:
    - name: /etc/containerd/config.toml
    - makedirs: True
    - mode: "0644"
    - contents: {{ config | tojson }}

containerd:
  service.running:
    - enable: True
    - require:
      - pkg: kube-packages
    - watch:
      - file: containerd-config
