{#- Imports the pause and workload images shipped with the release into containerd's k8s.io
    namespace (nodes reach no registry), unpacked for the snapshotter the CRI uses. #}
{%- from "map.jinja" import kube with context %}
{%- set check = '/usr/local/lib/kube-up/image-current.sh' %}

include:
  - containerd

node-image-check:
  file.managed:
    - name: {{ check }}
    - source: salt://node-images/image-current.sh
    - makedirs: True
    - mode: "0755"
{% for image in kube.images %}
node-image-{{ image.ref }}:
  cmd.run:
    - name: >-
        ctr -n k8s.io images import --snapshotter {{ kube.containerd_snapshotter }}
        {{ image.archive }}
    - unless: {{ check }} {{ image.ref }} {{ image.archive }}
    - require:
      - service: containerd
      - file: node-image-check
{% endfor %}
