{#- numerator / denominator as a double, 0 when the denominator is 0 or NULL. -#}
{% macro safe_divide(numerator, denominator) -%}
    coalesce(cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0), 0)
{%- endmacro %}
