{#- Tumbling windows: end = start + the window length, start aligned to it. -#}
{% test valid_window(model, column_name, end_column, minutes=1) %}
select {{ column_name }}, {{ end_column }}
from {{ model }}
where {{ end_column }} <> {{ column_name }} + interval '{{ minutes }} minutes'
   or epoch({{ column_name }}) % ({{ minutes }} * 60) <> 0
{% endtest %}
