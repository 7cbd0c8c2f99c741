{#- Use the folder's schema as-is (staging, intermediate, marts, reports, seeds) instead of
    dbt's default <target_schema>_<custom_schema>: the publisher reads marts/reports by name. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
