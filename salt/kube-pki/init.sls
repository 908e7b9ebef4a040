{#- The role's certificates and keys, decoded from kube-env; keys are root-only (0600). #}
{%- from "map.jinja" import kube with context %}

include:
  - base
{% for item in kube.pki_files %}
kube-pki-{{ item.file }}:
  file.managed:
    - name: {{ kube.cert_dir }}/{{ item.file }}
    - contents: {{ pillar[item.key] | base64_decode | tojson }}
    - user: root
    - group: root
    - mode: "{{ item.mode }}"
    - show_changes: False
    - require:
      - file: kube-cert-dir
{% endfor %}
