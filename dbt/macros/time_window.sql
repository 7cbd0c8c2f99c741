{#- Start of the tumbling window of `minutes` minutes that holds timestamp `ts` (UTC). -#}
{% macro window_start(ts, minutes=var('kpi_window_minutes', 1)) -%}
    time_bucket(interval '{{ minutes }} minutes', {{ ts }}, timestamptz '2000-01-01 00:00:00+00')
{%- endmacro %}

{#- End (exclusive) of the window that starts at `start`. -#}
{% macro window_end(start, minutes=var('kpi_window_minutes', 1)) -%}
    {{ start }} + interval '{{ minutes }} minutes'
{%- endmacro %}
