{#- nginx: the API's only door from outside the master (HTTPS on 443). #}
{%- from "map.jinja" import kube with context %}
{%- set site %}{% include "nginx/kubernetes-site.conf.j2" %}{% endset %}

include:
  - base
  - kube-pki

nginx-htpasswd:
  file.managed:
    - name: {{ kube.htpasswd_file }}
    - contents: {{ (kube.htpasswd ~ '\n') | tojson }}
    - user: root
    # nginx workers (www-data) read it per request; it holds a hash, not the password.
    - group: www-data
    - mode: "0640"
    - show_changes: False
    - require:
      - pkg: kube-packages

nginx-site:
  file.managed:
    - name: /etc/nginx/sites-available/kubernetes
    - mode: "0644"
    - contents: {{ site | tojson }}
    - require:
      - pkg: kube-packages

nginx-site-enabled:
  file.symlink:
    - name: /etc/nginx/sites-enabled/kubernetes
    - target: /etc/nginx/sites-available/kubernetes
    - require:
      - file: nginx-site

# Debian's default site listens on port 80; the master serves nothing there.
nginx-default-site:
  file.absent:
    - name: /etc/nginx/sites-enabled/default

nginx:
  service.running:
    - enable: True
    # A reload re-reads the config and the certificates without dropping open watches.
    - reload: True
    - require:
      - pkg: kube-packages
    - watch:
      - file: nginx-site
      - file: nginx-site-enabled
      - file: nginx-default-site
      - file: nginx-htpasswd
      - file: kube-pki-apiserver.crt
      - file: kube-pki-apiserver.key
      - file: kube-pki-ca.crt
      - file: kube-pki-front-proxy-client.crt
      - file: kube-pki-front-proxy-client.key
