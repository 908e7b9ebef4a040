{#- Installs the role's binaries from the unpacked server tarball, so each daemon can `watch` its
    binary and restart when kube-push brings a new release. #}
{%- from "map.jinja" import kube with context %}
{% for name in kube.binaries %}
kube-binary-{{ name }}:
  file.managed:
    - name: {{ kube.bin_dir }}/{{ name }}
    - source: {{ kube.release_bin_dir }}/{{ name }}
    - user: root
    - group: root
    - mode: "0755"
    - show_changes: False
{% endfor %}
