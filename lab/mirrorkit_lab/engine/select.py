"""SELECT and expressions: T-SQL parsed by sqlglot, checked and typed against the
catalog, rewritten for SQLite (catalog views, built-ins as mk_* functions,
variables as bound parameters), compiled once per text and reused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Optional

import sqlglot
from sqlglot import exp
from sqlglot.dialects.tsql import TSQL
from sqlglot.errors import ParseError, TokenError

from . import catalog
from .errors import SqlError, not_supported, syntax_error
from .functions import FUNCTIONS, datepart_name
from .results import Column
from .sqltypes import PRECEDENCE, SqlType, parse_type
from .store import MSDB
from .tables import RID, TableDef


class LabTSQL(TSQL):
    """T-SQL where every function call stays a plain call the lab resolves itself."""

    class Parser(TSQL.Parser):
        FUNCTIONS = {k: v for k, v in TSQL.Parser.FUNCTIONS.items()
                     if k in ("COUNT", "COUNT_BIG", "SUM", "MIN", "MAX", "AVG", "COALESCE", "NULLIF")}
        FUNCTION_PARSERS = {k: v for k, v in TSQL.Parser.FUNCTION_PARSERS.items()
                            if k in ("CAST", "TRY_CAST", "CONVERT", "TRY_CONVERT")}


SYSVARS: dict[str, str] = {
    "@@SERVERNAME": "nvarchar(128)", "@@SERVICENAME": "nvarchar(128)", "@@VERSION": "nvarchar(300)",
    "@@SPID": "smallint", "@@TRANCOUNT": "int", "@@ROWCOUNT": "int", "@@ERROR": "int",
    "@@LANGUAGE": "nvarchar(128)", "@@IDENTITY": "numeric(38,0)", "@@OPTIONS": "int",
    "@@LOCK_TIMEOUT": "int", "@@TEXTSIZE": "int", "@@MAX_CONNECTIONS": "int", "@@DATEFIRST": "tinyint",
    "@@MICROSOFTVERSION": "int", "@@PROCID": "int", "@@NESTLEVEL": "int", "@@MAX_PRECISION": "tinyint",
}

STRING_LIKE = ("char", "varchar", "nchar", "nvarchar", "text", "ntext")


@dataclass(frozen=True)
class CompileContext:
    database_id: int
    databases: tuple[tuple[str, int], ...]            # (lower name, id)
    variables: tuple[tuple[str, str], ...]            # (lower name, type)
    # user tables: `resolve(database_id, schema or None, name)`; `tables_key` changes whenever what
    # it returns may have changed (DDL), so compiled plans cached under the old key are not reused
    tables_key: Any = 0
    resolve: Optional[Callable[[int, Optional[str], str], Optional[TableDef]]] = \
        field(default=None, compare=False, hash=False)

    def database(self, name: str) -> Optional[int]:
        for n, i in self.databases:
            if n == name.lower():
                return i
        return None

    def variable_type(self, name: str) -> Optional[str]:
        for n, t in self.variables:
            if n == name.lower():
                return t
        return None


@dataclass(frozen=True)
class Compiled:
    sql: str
    columns: tuple[Column, ...]
    types: tuple[SqlType, ...]
    params: tuple[tuple[str, str], ...]               # (placeholder, @var or @@SYSVAR)
    live: frozenset[str]
    assign: Optional[tuple[str, ...]] = None          # SELECT @a = …, @b = …
    databases: frozenset[int] = frozenset()           # other databases or user tables the query reads


@dataclass(frozen=True)
class DmlPlan:
    """INSERT / UPDATE / DELETE as a query for the rows and what to do with them (dml.py).

    insert: source yields the new rows' values for `columns` (None: DEFAULT VALUES);
    update: source yields _rid, every column's stored value, then the new values of `columns`;
    delete: source yields _rid and every column's stored value."""
    kind: str
    table: TableDef
    columns: tuple[str, ...]
    source: Optional[Compiled]


@dataclass
class _Scope:
    sources: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)   # select-list aliases (ORDER BY)


class _Compiler:
    def __init__(self, ctx: CompileContext):
        self.ctx = ctx
        self.params: list[tuple[str, str]] = []
        self.param_names: dict[str, str] = {}
        self.live: set[str] = set()
        self.ctes: list[dict[str, list[tuple[str, str]]]] = []
        self.databases: set[int] = set()

    # -- queries ----------------------------------------------------------------------------
    def query(self, node: exp.Expression, outer: list[_Scope]) -> list[tuple[str, str]]:
        """Rewrite a query in place; return its output columns (name, type)."""
        with_ = node.args.get("with_")
        pushed = False
        if with_ is not None:
            defs: dict[str, list[tuple[str, str]]] = {}
            self.ctes.append(defs)
            pushed = True
            for cte in with_.expressions:
                cols = self.query(cte.this, outer)
                names = [c.name for c in (cte.args.get("alias").columns or [])] if cte.args.get("alias") else []
                if names:
                    cols = [(n, t) for n, (_, t) in zip(names, cols)]
                defs[cte.alias.lower()] = cols
        try:
            if isinstance(node, exp.Select):
                return self.select(node, outer)
            if isinstance(node, exp.SetOperation):
                left = self.query(node.this, outer)
                right = self.query(node.expression, outer)
                if len(left) != len(right):
                    raise SqlError(205, abort_batch=True)
                return [(n, _union_type(a, b)) for (n, a), (_, b) in zip(left, right)]
            if isinstance(node, exp.Subquery):
                return self.query(node.this, outer)
            raise not_supported(f"The {node.key.upper()} statement")
        finally:
            if pushed:
                self.ctes.pop()

    def select(self, sel: exp.Select, outer: list[_Scope]) -> list[tuple[str, str]]:
        scope = _Scope()
        from_ = sel.args.get("from_")
        if from_ is not None:
            self.source(from_.this, scope, outer)
        for join in sel.args.get("joins") or []:
            if join.args.get("kind") and join.args["kind"].upper() not in ("INNER", "OUTER", "CROSS"):
                raise not_supported(f"{join.args['kind']} JOIN")
            self.source(join.this, scope, outer)
        for key in ("laterals", "pivots", "into", "locks", "sample", "settings", "windows"):
            if sel.args.get(key):
                raise not_supported(f"SELECT with {key.upper()}")
        if sel.args.get("kind") or sel.args.get("operation_modifiers"):
            raise not_supported("SELECT modifiers")
        scopes = [scope] + outer
        for join in sel.args.get("joins") or []:
            if join.args.get("on") is not None:
                join.set("on", self.expr(join.args["on"], scopes)[0])
            if join.args.get("using"):
                raise not_supported("JOIN … USING")
        # expand * and t.*
        items: list[exp.Expression] = []
        for e in sel.expressions:
            if isinstance(e, exp.Star):
                items.extend(self.star(scope, None))
            elif isinstance(e, exp.Column) and isinstance(e.this, exp.Star):
                items.extend(self.star(scope, e.table))
            else:
                items.append(e)
        out: list[tuple[str, str]] = []
        new_items = []
        for e in items:
            name = _output_name(e)
            inner = e.this if isinstance(e, exp.Alias) else e
            rewritten, typ = self.expr(inner, scopes)
            if isinstance(e, exp.Alias):
                rewritten = exp.Alias(this=rewritten, alias=exp.Identifier(this=e.alias, quoted=True))
                scope.aliases[e.alias.lower()] = typ
            new_items.append(rewritten)
            out.append((name, typ))
        sel.set("expressions", new_items)
        for key in ("where", "having"):
            clause = sel.args.get(key)
            if clause is not None:
                clause.set("this", self.expr(clause.this, scopes)[0])
        group = sel.args.get("group")
        if group is not None:
            group.set("expressions", [self.expr(g, scopes)[0] for g in group.expressions])
        order = sel.args.get("order")
        if order is not None:
            self.order(order, scopes, out)
        limit = sel.args.get("limit")
        if limit is not None:
            if limit.args.get("percent") or limit.args.get("with_ties"):
                raise not_supported("TOP … PERCENT / WITH TIES")
            limit.set("expression", self.expr(limit.expression, scopes)[0])
        if sel.args.get("offset") is not None:
            sel.args["offset"].set("expression", self.expr(sel.args["offset"].expression, scopes)[0])
        return out

    def order(self, order: exp.Order, scopes: list[_Scope], out) -> None:
        new = []
        for o in order.expressions:
            target = o.this
            if isinstance(target, exp.Column) and not target.table and \
                    target.name.lower() in scopes[0].aliases and not self._resolves(target, scopes):
                typ = scopes[0].aliases[target.name.lower()]
                target = exp.Column(this=exp.Identifier(this=target.name, quoted=True))
            elif isinstance(target, exp.Literal) and not target.is_string:
                idx = int(target.this)
                if not 1 <= idx <= len(out):
                    raise SqlError(108, idx, abort_batch=True)
                typ = out[idx - 1][1]
            else:
                target, typ = self.expr(target, scopes)
            if parse_type(typ).base in STRING_LIKE:
                target = exp.Collate(this=target, expression=exp.Var(this="NOCASE"))
            o.set("this", target)
            new.append(o)
        order.set("expressions", new)

    def _resolves(self, col: exp.Column, scopes: list[_Scope]) -> bool:
        try:
            self.column(col, scopes)
            return True
        except SqlError:
            return False

    def star(self, scope: _Scope, table: Optional[str]) -> list[exp.Expression]:
        if table is not None:
            key = table.lower()
            if key not in scope.sources:
                raise SqlError(4104, f"{table}.*", abort_batch=True)
            keys = [key]
        else:
            if not scope.sources:
                raise SqlError(263, abort_batch=True)
            keys = list(scope.sources)
        return [exp.Column(this=exp.Identifier(this=c, quoted=True), table=exp.Identifier(this=k, quoted=True))
                for k in keys for c, _ in scope.sources[k]]

    def source(self, node: exp.Expression, scope: _Scope, outer: list[_Scope]) -> None:
        if isinstance(node, exp.Table):
            alias = node.alias or node.name
            cols = self.table(node)
        elif isinstance(node, exp.Subquery):
            if not node.alias:
                raise SqlError(102, ")", abort_batch=True)
            cols = self.query(node.this, outer)
            alias = node.alias
            names = [c.name for c in node.args["alias"].columns] if node.args["alias"].columns else []
            if names:
                # SQLite has no column list on a derived-table alias: name the inner columns instead
                inner = node.this
                if not isinstance(inner, exp.Select) or len(names) != len(inner.expressions):
                    raise not_supported("Column aliases on this derived table")
                inner.set("expressions", [exp.alias_(e.this if isinstance(e, exp.Alias) else e, n, quoted=True)
                                          for e, n in zip(inner.expressions, names)])
                cols = [(n, t) for n, (_, t) in zip(names, cols)]
            node.set("alias", exp.TableAlias(this=exp.Identifier(this=alias.lower(), quoted=True)))
        else:
            raise not_supported(f"FROM {node.key.upper()}")
        key = alias.lower()
        if key in scope.sources:
            raise SqlError(1013, alias, alias, abort_batch=True)
        scope.sources[key] = cols

    def table(self, node: exp.Table) -> list[tuple[str, str]]:
        name, schema, db = node.name, node.db, node.catalog
        written = ".".join(p for p in (db, schema, name) if p)
        if not schema and not db:
            for defs in reversed(self.ctes):
                if name.lower() in defs:
                    node.set("this", exp.Identifier(this=name.lower(), quoted=True))
                    self._alias(node, node.alias or name)
                    return defs[name.lower()]
        view = catalog.lookup(name) if schema.lower() == "sys" else None
        dbid = self.ctx.database_id
        if db:
            dbid = self.ctx.database(db)
            if dbid is None:
                raise SqlError(208, written)
            self.databases.add(dbid)
        if view is None and dbid == MSDB and schema.lower() in ("", "dbo"):
            view = catalog.lookup_msdb(name)      # msdb.dbo.backupset, msdb..restorehistory …
        if view is None:
            user = self.user_table(node)
            if user is None:
                raise SqlError(208, written)
            return [(c.name, c.type) for c in user.columns]
        alias = (node.alias or name).lower()
        if view.scope == "live":
            self.live.add(view.name)
        if view.scope == "database":
            inner = exp.select(*[exp.Column(this=exp.Identifier(this=c, quoted=True)) for c, _ in view.columns]) \
                .from_(catalog.sqlite_view_name(view)) \
                .where(exp.EQ(this=exp.Column(this=exp.Identifier(this="_db", quoted=True)),
                              expression=exp.Literal.number(dbid)))
            sub = exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.Identifier(this=alias, quoted=True)))
            node.replace(sub)
        else:
            node.set("this", exp.Identifier(this=catalog.sqlite_view_name(view), quoted=True))
            node.set("db", None)
            node.set("catalog", None)
            node.set("hints", None)
            self._alias(node, alias)
        return list(view.columns)

    def user_table(self, node: exp.Table) -> Optional[TableDef]:
        """Point a table reference at a user table's SQLite table; None when there is none."""
        if self.ctx.resolve is None:
            return None
        dbid = self.ctx.database(node.catalog) if node.catalog else self.ctx.database_id
        if dbid is None:
            return None
        t = self.ctx.resolve(dbid, node.db or None, node.name)
        if t is None:
            return None
        self.databases.add(dbid)
        alias = (node.alias or node.name).lower()
        node.set("this", exp.Identifier(this=t.physical, quoted=True))
        node.set("db", None)
        node.set("catalog", None)
        node.set("hints", None)
        self._alias(node, alias)
        return t

    @staticmethod
    def _alias(node: exp.Table, alias: str) -> None:
        node.set("alias", exp.TableAlias(this=exp.Identifier(this=alias.lower(), quoted=True)))

    # -- expressions --------------------------------------------------------------------------
    def column(self, col: exp.Column, scopes: list[_Scope]) -> tuple[exp.Expression, str]:
        name = col.name
        table = col.table
        for scope in scopes:
            if table:
                cols = scope.sources.get(table.lower())
                if cols is None:
                    continue
                for c, t in cols:
                    if c.lower() == name.lower():
                        return _col(table.lower(), c), t
                raise SqlError(207, name)
            hits = [(k, c, t) for k, cols in scope.sources.items() for c, t in cols if c.lower() == name.lower()]
            if len(hits) > 1:
                raise SqlError(209, name)
            if hits:
                k, c, t = hits[0]
                return _col(k, c), t
        if table:
            raise SqlError(4104, ".".join(p for p in (col.catalog, col.db, table, name) if p))
        raise SqlError(207, name)

    def expr(self, node: exp.Expression, scopes: list[_Scope]) -> tuple[exp.Expression, str]:
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                raise SqlError(102, "*", abort_batch=True)
            return self.column(node, scopes)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return node, f"varchar({max(1, len(node.this))})"
            return node, _number_type(node.this)
        if isinstance(node, exp.National):
            return exp.Literal.string(node.this), f"nvarchar({max(1, len(node.this))})"
        if isinstance(node, exp.HexString):
            return node, f"varbinary({max(1, (len(node.this) + 1) // 2)})"
        if isinstance(node, exp.Null):
            return node, "int"
        if isinstance(node, exp.Parameter):
            return self.variable(node)
        if isinstance(node, exp.Anonymous):
            return self.function(node, scopes)
        if isinstance(node, (exp.Cast, exp.TryCast, exp.Convert)):
            return self.cast(node, scopes)
        if isinstance(node, exp.CurrentTimestamp):
            return exp.Anonymous(this="mk_getdate", expressions=[]), "datetime"
        if isinstance(node, (exp.Count,)):
            inner = node.this
            if inner is not None and not isinstance(inner, exp.Star):
                node.set("this", self.expr(inner, scopes)[0])
            return node, "bigint" if node.args.get("big_int") else "int"
        if isinstance(node, (exp.Sum, exp.Min, exp.Max, exp.Avg)):
            inner, typ = self.expr(node.this, scopes)
            node.set("this", inner)
            if isinstance(node, exp.Sum) and parse_type(typ).base in ("tinyint", "smallint", "bit"):
                typ = "int"
            return node, typ
        if isinstance(node, exp.Distinct):
            node.set("expressions", [self.expr(e, scopes)[0] for e in node.expressions])
            return node, "int"
        if isinstance(node, exp.Coalesce):
            first, t = self.expr(node.this, scopes)
            rest = [self.expr(e, scopes) for e in node.expressions]
            node.set("this", first)
            node.set("expressions", [r[0] for r in rest])
            if not node.args.get("is_null"):
                for _, rt in rest:
                    t = _union_type(t, rt)
            return node, t
        if isinstance(node, exp.Nullif):
            a, t = self.expr(node.this, scopes)
            b, _ = self.expr(node.expression, scopes)
            node.set("this", a)
            node.set("expression", b)
            return node, t
        if isinstance(node, exp.Case):
            typ = None
            if node.this is not None:
                node.set("this", self.expr(node.this, scopes)[0])
            for if_ in node.args.get("ifs") or []:
                if_.set("this", self.expr(if_.this, scopes)[0])
                val, t = self.expr(if_.args["true"], scopes)
                if_.set("true", val)
                typ = t if typ is None else _union_type(typ, t)
            if node.args.get("default") is not None:
                val, t = self.expr(node.args["default"], scopes)
                node.set("default", val)
                typ = t if typ is None else _union_type(typ, t)
            return node, typ or "int"
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)):
            left, lt = self.expr(node.this, scopes)
            right, rt = self.expr(node.expression, scopes)
            typ = _union_type(lt, rt)
            base = parse_type(typ)
            if isinstance(node, exp.Add) and (base.is_string or base.is_binary):
                return exp.DPipe(this=left, expression=right), _concat_type(lt, rt)
            if base.is_string or base.is_binary:
                raise SqlError(402, parse_type(lt).base, parse_type(rt).base, node.key)
            node.set("this", left)
            node.set("expression", right)
            return node, typ
        if isinstance(node, exp.Neg):
            inner, t = self.expr(node.this, scopes)
            node.set("this", inner)
            return node, t
        if isinstance(node, exp.Paren):
            inner, t = self.expr(node.this, scopes)
            node.set("this", inner)
            return node, t
        if isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            left, lt = self.expr(node.this, scopes)
            right, rt = self.expr(node.expression, scopes)
            if parse_type(lt).base in STRING_LIKE and parse_type(rt).base in STRING_LIKE:
                right = exp.Collate(this=right, expression=exp.Var(this="NOCASE"))
            node.set("this", left)
            node.set("expression", right)
            return node, "bit"
        if isinstance(node, (exp.And, exp.Or)):
            node.set("this", self.expr(node.this, scopes)[0])
            node.set("expression", self.expr(node.expression, scopes)[0])
            return node, "bit"
        if isinstance(node, exp.Not):
            node.set("this", self.expr(node.this, scopes)[0])
            return node, "bit"
        if isinstance(node, exp.Escape) and isinstance(node.this, (exp.Like, exp.ILike)):
            like = node.this
            return self.like(like.this, like.expression, node.expression, scopes, bool(like.args.get("negate")))
        if isinstance(node, (exp.Like, exp.ILike)):
            return self.like(node.this, node.expression, None, scopes, bool(node.args.get("negate")))
        if isinstance(node, exp.Is):
            node.set("this", self.expr(node.this, scopes)[0])
            return node, "bit"
        if isinstance(node, exp.Between):
            for k in ("this", "low", "high"):
                node.set(k, self.expr(node.args[k], scopes)[0])
            return node, "bit"
        if isinstance(node, exp.In):
            left, lt = self.expr(node.this, scopes)
            node.set("this", left)
            if node.args.get("query") is not None:
                self.query(node.args["query"].this if isinstance(node.args["query"], exp.Subquery)
                           else node.args["query"], scopes)
            else:
                items = []
                for e in node.expressions:
                    v, vt = self.expr(e, scopes)
                    if parse_type(lt).base in STRING_LIKE and parse_type(vt).base in STRING_LIKE:
                        v = exp.Collate(this=v, expression=exp.Var(this="NOCASE"))
                    items.append(v)
                node.set("expressions", items)
            return node, "bit"
        if isinstance(node, exp.Exists):
            self.query(node.this, scopes)
            return node, "bit"
        if isinstance(node, exp.Subquery):
            cols = self.query(node.this, scopes)
            if len(cols) != 1:
                raise SqlError(116, abort_batch=True)
            return node, cols[0][1]
        if isinstance(node, (exp.Select, exp.SetOperation)):
            cols = self.query(node, scopes)
            return node, cols[0][1] if cols else "int"
        if isinstance(node, exp.Boolean):
            raise SqlError(102, node.sql(), abort_batch=True)
        if isinstance(node, exp.Window):
            raise not_supported("Window functions (OVER)")
        if isinstance(node, exp.Star):
            return node, "int"
        raise not_supported(f"The expression {node.sql(dialect='tsql')[:60]!r}")

    def like(self, value, pattern, escape, scopes, negate: bool = False) -> tuple[exp.Expression, str]:
        # T-SQL patterns have [a-c] and [^a-c] classes and follow the case-insensitive collation
        args = [self.expr(value, scopes)[0], self.expr(pattern, scopes)[0]]
        if escape is not None:
            args.append(self.expr(escape, scopes)[0])
        return exp.EQ(this=exp.Anonymous(this="mk_like", expressions=args),
                      expression=exp.Literal.number(0 if negate else 1)), "bit"

    def variable(self, node: exp.Parameter) -> tuple[exp.Expression, str]:
        inner = node.this
        if isinstance(inner, exp.Parameter):
            name = "@@" + inner.name.upper()
            typ = SYSVARS.get(name)
            if typ is None:
                raise SqlError(137, name, abort_batch=True)
        else:
            name = "@" + inner.name
            typ = self.ctx.variable_type(name)
            if typ is None:
                raise SqlError(137, name, abort_batch=True)
        key = name.lower()
        placeholder = self.param_names.get(key)
        if placeholder is None:
            placeholder = f"p{len(self.params)}"
            self.param_names[key] = placeholder
            self.params.append((placeholder, name))
        return exp.Placeholder(this=placeholder), typ

    def function(self, node: exp.Anonymous, scopes: list[_Scope]) -> tuple[exp.Expression, str]:
        name = node.name.upper()
        fdef = FUNCTIONS.get(name)
        if fdef is None:
            raise SqlError(195, node.name, abort_batch=True)
        args = list(node.expressions)
        if not fdef.min_args <= len(args) <= fdef.max_args:
            if fdef.min_args == fdef.max_args:
                raise SqlError(174, name.lower(), fdef.min_args, abort_batch=True)
            raise SqlError(189, name.lower(), fdef.min_args, fdef.max_args, abort_batch=True)
        out_args: list[exp.Expression] = []
        types: list[str] = []
        if fdef.datepart:
            part = args.pop(0)
            if not isinstance(part, (exp.Column, exp.Var)) or (isinstance(part, exp.Column) and part.table):
                raise SqlError(155, part.sql(), abort_batch=True)
            out_args.append(exp.Literal.string(datepart_name(part.name)))
        for a in args:
            v, t = self.expr(a, scopes)
            out_args.append(v)
            types.append(t)
        if fdef.inject_db:
            out_args.insert(0, exp.Literal.number(self.ctx.database_id))
        return exp.Anonymous(this="mk_" + name.lower(), expressions=out_args), fdef.return_type(types)

    def cast(self, node: exp.Expression, scopes: list[_Scope]) -> tuple[exp.Expression, str]:
        if isinstance(node, exp.Convert):
            target_node, value, style = node.this, node.expression, node.args.get("style")
            safe = bool(node.args.get("safe"))
        else:
            target_node, value, style = node.args["to"], node.this, None
            safe = isinstance(node, exp.TryCast) or bool(node.args.get("safe"))
        target = _type_text(target_node)
        parse_type(target)  # validates the name
        v, source = self.expr(value, scopes)
        args = [exp.Literal.string(target), exp.Literal.string(source), v]
        if style is not None:
            args.append(self.expr(style, scopes)[0])
        fn = "mk_try_convert" if safe else "mk_convert"
        return exp.Anonymous(this=fn, expressions=args), target


def _col(table: str, name: str) -> exp.Column:
    return exp.Column(this=exp.Identifier(this=name, quoted=True), table=exp.Identifier(this=table, quoted=True))


def _output_name(e: exp.Expression) -> str:
    if isinstance(e, exp.Alias):
        return e.alias
    if isinstance(e, exp.Column):
        return e.name
    return ""


def _number_type(text: str) -> str:
    if "e" in text.lower():
        return "float"
    if "." in text:
        digits = text.replace(".", "").lstrip("0")
        scale = len(text.split(".")[1])
        return f"numeric({max(len(digits), scale, 1)},{scale})"
    n = int(text)
    return "int" if n < 2 ** 31 else ("bigint" if n < 2 ** 63 else "numeric(38,0)")


def _union_type(a: str, b: str) -> str:
    ta, tb = parse_type(a), parse_type(b)
    pa, pb = PRECEDENCE.get(ta.base, 0), PRECEDENCE.get(tb.base, 0)
    if ta.base == tb.base and ta.length is not None and tb.length is not None:
        if ta.length == -1 or tb.length == -1:
            return str(SqlType(ta.base, -1))
        return str(SqlType(ta.base, max(ta.length, tb.length)))
    return a if pa >= pb else b


def _concat_type(a: str, b: str) -> str:
    ta, tb = parse_type(a), parse_type(b)
    unicode = ta.base in ("nvarchar", "nchar", "ntext") or tb.base in ("nvarchar", "nchar", "ntext")
    if ta.is_binary:
        return "varbinary(max)"
    return "nvarchar(max)" if unicode else "varchar(max)"


def _type_text(node: exp.Expression) -> str:
    if isinstance(node, exp.DataType):
        if node.this == exp.DataType.Type.USERDEFINED:
            return node.sql(dialect="tsql")
        text = node.sql(dialect="tsql").lower()
        return {"datetime2": "datetime2(7)"}.get(text, text)
    return node.sql(dialect="tsql")


def _syntax_from(exc: Exception, text: str) -> SqlError:
    near = ""
    errors = getattr(exc, "errors", None)
    if errors:
        near = (errors[0].get("highlight") or "").strip()
    if not near:
        near = text.strip().split()[-1] if text.strip() else ""
    kw = near.upper() in ("SELECT", "FROM", "WHERE", "ORDER", "GROUP", "BY", "AS", "ON", "AND", "OR",
                          "NOT", "IN", "IS", "NULL", "JOIN", "CASE", "WHEN", "THEN", "ELSE", "END")
    return syntax_error(near, keyword=kw)


@lru_cache(maxsize=4096)
def compile_query(text: str, ctx: CompileContext) -> Compiled:
    try:
        trees = sqlglot.parse(text, read=LabTSQL)
    except (ParseError, TokenError) as exc:
        raise _syntax_from(exc, text) from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise syntax_error(text.strip()[:30])
    tree = trees[0]
    assign = None
    if isinstance(tree, exp.Select):
        targets = [e for e in tree.expressions
                   if isinstance(e, exp.EQ) and isinstance(e.this, exp.Parameter)
                   and not isinstance(e.this.this, exp.Parameter)]
        if targets:
            if len(targets) != len(tree.expressions):
                raise SqlError(141, abort_batch=True)
            assign = tuple("@" + e.this.this.name for e in targets)
            for name in assign:
                if ctx.variable_type(name) is None:
                    raise SqlError(137, name, abort_batch=True)
            tree.set("expressions", [e.expression for e in targets])
    elif not isinstance(tree, (exp.SetOperation, exp.Subquery)):
        raise not_supported(f"The {tree.key.upper()} statement")
    comp = _Compiler(ctx)
    cols = comp.query(tree, [])
    if assign is not None:
        cols = [(n, ctx.variable_type(n)) for n in assign]
    return _compiled(tree, comp, cols, assign)


def _compiled(tree: exp.Expression, comp: _Compiler, cols, assign=None) -> Compiled:
    sql = tree.sql(dialect="sqlite")
    types = tuple(parse_type(t) for _, t in cols)
    columns = tuple(Column(n, str(t)) for (n, _), t in zip(cols, types))
    return Compiled(sql, columns, types, tuple(comp.params), frozenset(comp.live), assign,
                    frozenset(comp.databases))


def _target(node: exp.Expression, ctx: CompileContext) -> tuple[TableDef, exp.Table]:
    if not isinstance(node, exp.Table):
        raise not_supported("This DML target")
    written = ".".join(p for p in (node.catalog, node.db, node.name) if p)
    dbid = ctx.database(node.catalog) if node.catalog else ctx.database_id
    t = ctx.resolve(dbid, node.db or None, node.name) if (dbid is not None and ctx.resolve) else None
    if t is None:
        if (node.db or "").lower() == "sys":
            raise SqlError(259)
        raise SqlError(208, written)
    return t, node


@lru_cache(maxsize=4096)
def compile_dml(text: str, ctx: CompileContext) -> DmlPlan:
    try:
        tree = sqlglot.parse_one(text, read=LabTSQL)
    except (ParseError, TokenError) as exc:
        raise _syntax_from(exc, text) from None
    comp = _Compiler(ctx)
    if isinstance(tree, exp.Insert):
        target = tree.this
        names = None
        if isinstance(target, exp.Schema):
            names = [i.name for i in target.expressions]
            target = target.this
        t, _ = _target(target, ctx)
        if names is None:
            names = [c.name for c in t.columns if not c.identity]
        columns = []
        for n in names:
            c = t.column(n)
            if c is None:
                raise SqlError(207, n)
            if c.identity:
                raise SqlError(544, t.name)
            if c.name in columns:
                raise SqlError(264, c.name)
            columns.append(c.name)
        if tree.args.get("default"):
            return DmlPlan("insert", t, tuple(columns), None)
        source = tree.expression
        if isinstance(source, exp.Values):
            rows = [r.expressions if isinstance(r, exp.Tuple) else [r] for r in source.expressions]
            for r in rows:
                if len(r) > len(columns):
                    raise SqlError(110)
                if len(r) < len(columns):
                    raise SqlError(109)
            query: exp.Expression = exp.Select(expressions=list(rows[0]))
            for r in rows[1:]:
                query = exp.Union(this=query, expression=exp.Select(expressions=list(r)), distinct=False)
        elif isinstance(source, (exp.Select, exp.SetOperation, exp.Subquery)):
            query = source
        else:
            raise not_supported("This INSERT source")
        cols = comp.query(query, [])
        if len(cols) < len(columns):
            raise SqlError(120)
        if len(cols) > len(columns):
            raise SqlError(121)
        return DmlPlan("insert", t, tuple(columns), _compiled(query, comp, cols))
    if isinstance(tree, (exp.Update, exp.Delete)):
        node = tree.this if tree.this else (tree.args.get("tables") or [None])[0]
        if tree.args.get("from_") is not None or tree.args.get("joins") or tree.args.get("returning") \
                or (isinstance(tree, exp.Delete) and tree.args.get("using")):
            raise not_supported(f"{tree.key.upper()} … FROM / OUTPUT")
        t, table = _target(node, ctx)
        alias = (table.alias or table.name)
        sets: list[tuple[str, exp.Expression]] = []
        if isinstance(tree, exp.Update):
            for e in tree.expressions:
                if not isinstance(e, exp.EQ) or not isinstance(e.this, exp.Column):
                    raise not_supported("This SET clause")
                c = t.column(e.this.name)
                if c is None:
                    raise SqlError(207, e.this.name)
                if c.identity:
                    raise SqlError(8102, c.name)
                sets.append((c.name, e.expression))
        items = [exp.Column(this=exp.Identifier(this=c.name, quoted=True),
                            table=exp.Identifier(this=alias, quoted=True)) for c in t.columns]
        query = exp.Select(expressions=items + [v for _, v in sets])
        query.set("from_", exp.From(this=table.copy()))
        if tree.args.get("where") is not None:
            query.set("where", tree.args["where"])
        cols = comp.query(query, [])
        query.set("expressions", [exp.Column(this=exp.Identifier(this=RID, quoted=True),
                                             table=exp.Identifier(this=alias.lower(), quoted=True))]
                  + query.expressions)
        cols = [(RID, "bigint")] + cols
        kind = "update" if isinstance(tree, exp.Update) else "delete"
        return DmlPlan(kind, t, tuple(n for n, _ in sets), _compiled(query, comp, cols))
    raise not_supported(f"The {tree.key.upper()} statement")


def compile_expression(text: str, ctx: CompileContext) -> Compiled:
    return compile_query(f"SELECT {text}", ctx)


def compile_condition(text: str, ctx: CompileContext) -> Compiled:
    return compile_query(f"SELECT CASE WHEN {text} THEN 1 ELSE 0 END", ctx)
