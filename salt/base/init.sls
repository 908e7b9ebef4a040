{#- What every VM of the cluster needs before its role's states: packages and the cert dir. #}
{%- from "map.jinja" import kube with context %}

# refresh: only runs `apt-get update` when a package is missing (fresh GCE image); a no-op where
# everything is installed, as on localcloud machines that have no route to a mirror.
kube-packages:
  pkg.installed:
    - pkgs: {{ kube.packages | tojson }}
    - refresh: True

kube-cert-dir:
  file.directory:
    - name: {{ kube.cert_dir }}
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: True
