{#
  Point-in-time reads of SCD type 2 history: a version is valid over [valid_from, valid_to),
  valid_to NULL for the open (current) version.

  valid_at(versions, ts): true when the version row `versions` was the valid one at `ts`.

  version_at(facts, fact_keys, versions, join_key, ts, columns, flag): one row per row of
  `facts` (identified by `fact_keys`) that has at least one version of its `join_key`: the
  fact keys, `columns` of the version valid at the fact's `ts`, and a boolean `flag` saying
  whether a version really was valid then. When none was (a fact older than its key's first
  version, or newer than a closed last one), the fact gets the version nearest in time — the
  first version before the history starts, the last one after it ends — with `flag` false.
  A fact whose key has no version at all gets no row.
#}

{% macro valid_at(versions, ts) -%}
    ({{ versions }}.valid_from <= {{ ts }} and ({{ versions }}.valid_to is null or {{ ts }} < {{ versions }}.valid_to))
{%- endmacro %}

{#- How far `ts` lies outside the version's range (0 inside it, and on its closing boundary). -#}
{% macro version_distance(versions, ts) -%}
    case
        when {{ ts }} < {{ versions }}.valid_from then {{ versions }}.valid_from - {{ ts }}
        when {{ versions }}.valid_to is not null and {{ ts }} >= {{ versions }}.valid_to then {{ ts }} - {{ versions }}.valid_to
        else interval 0 second
    end
{%- endmacro %}

{% macro version_at(facts, fact_keys, versions, join_key, ts, columns, flag) -%}
    select
        {%- for key in fact_keys %}
        {{ facts }}.{{ key }},
        {%- endfor %}
        {%- for column in columns %}
        {{ versions }}.{{ column }},
        {%- endfor %}
        {{ valid_at(versions, facts ~ '.' ~ ts) }} as {{ flag }}

    from {{ facts }}
    inner join {{ versions }}
        on {{ facts }}.{{ join_key }} = {{ versions }}.{{ join_key }}
    qualify row_number() over (
        partition by {% for key in fact_keys %}{{ facts }}.{{ key }}{{ ", " if not loop.last }}{% endfor %}
        order by
            {{ flag }} desc,
            {{ version_distance(versions, facts ~ '.' ~ ts) }},
            {{ versions }}.valid_from desc
    ) = 1
{%- endmacro %}
