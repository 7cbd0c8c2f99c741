{#- A money amount rounded to cents, typed as the marts' money type. -#}
{% macro money(expression) -%}
    cast(round({{ expression }}, 2) as decimal(18, 2))
{%- endmacro %}
