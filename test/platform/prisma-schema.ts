/**
 * A small parser of prisma/schema.prisma for the drift test: model/view blocks with @@schema and
 * @@map, scalar fields with @map, optionality, list-ness and the @db.* native type. Relation fields
 * (whose type is another model) carry no column and are skipped; enum fields keep their enum name.
 */
export interface PrismaField {
  name: string;
  column: string;
  type: string;
  optional: boolean;
  list: boolean;
  /** e.g. "Uuid", "Timestamptz", "Decimal" (without arguments) */
  nativeType?: string;
  /** e.g. ["12", "2"] for @db.Decimal(12, 2) */
  nativeArgs: string[];
  isEnum: boolean;
}

/** enum name → database type name (its @@map, or the name) */
export function parsePrismaEnums(source: string): Map<string, string> {
  return new Map(blocks(stripComments(source), 'enum').map((b) => [b.name, stringArg('@@map', b.body) ?? b.name]));
}

export interface PrismaModel {
  kind: 'model' | 'view';
  name: string;
  schema?: string;
  table: string;
  fields: PrismaField[];
}

const SCALARS = new Set(['String', 'Int', 'BigInt', 'Float', 'Decimal', 'DateTime', 'Boolean', 'Json', 'Bytes']);

function stripComments(text: string): string {
  // line comments (// and ///) outside of strings
  return text.split('\n').map((line) => {
    let inString = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (ch === '"' && line[i - 1] !== '\\') inString = !inString;
      if (!inString && ch === '/' && line[i + 1] === '/') return line.slice(0, i);
    }
    return line;
  }).join('\n');
}

function blocks(text: string, keyword: string): { name: string; body: string }[] {
  const out: { name: string; body: string }[] = [];
  const re = new RegExp(`^\\s*${keyword}\\s+(\\w+)\\s*\\{`, 'gm');
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let depth = 1;
    let i = re.lastIndex;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === '{') depth++;
      else if (text[i] === '}') depth--;
    }
    out.push({ name: m[1], body: text.slice(re.lastIndex, i - 1) });
  }
  return out;
}

const stringArg = (attr: string, body: string): string | undefined =>
  new RegExp(`${attr}\\(\\s*(?:name:\\s*)?"([^"]+)"`).exec(body)?.[1];

export function parsePrismaSchema(source: string): PrismaModel[] {
  const text = stripComments(source);
  const models = [...blocks(text, 'model').map((b) => ({ ...b, kind: 'model' as const })), ...blocks(text, 'view').map((b) => ({ ...b, kind: 'view' as const }))];
  const modelNames = new Set(models.map((m) => m.name));
  const enums = new Set(blocks(text, 'enum').map((b) => b.name));
  return models.map(({ name, body, kind }) => {
    const fields: PrismaField[] = [];
    let schema: string | undefined;
    let table = name;
    for (const raw of body.split('\n')) {
      const line = raw.trim();
      if (!line) continue;
      if (line.startsWith('@@')) {
        if (line.startsWith('@@schema')) schema = stringArg('@@schema', line);
        if (line.startsWith('@@map')) table = stringArg('@@map', line) ?? table;
        continue;
      }
      const m = /^(\w+)\s+(\w+(?:\("[^"]*"\))?)(\[\])?(\?)?\s*(.*)$/.exec(line);
      if (!m) throw new Error(`prisma/schema.prisma: cannot parse field line in ${kind} ${name}: "${line}"`);
      const [, fieldName, type, list, optional, attrs] = m;
      const baseType = type.replace(/\(.*$/, '');
      if (modelNames.has(baseType) || attrs.includes('@relation') && !SCALARS.has(baseType)) continue; // relation field
      if (attrs.includes('@ignore')) continue;
      const native = /@db\.(\w+)(?:\(([^)]*)\))?/.exec(attrs);
      fields.push({
        name: fieldName,
        column: stringArg('@map', attrs) ?? fieldName,
        type: baseType === 'Unsupported' ? type : baseType,
        optional: Boolean(optional),
        list: Boolean(list),
        nativeType: native?.[1],
        nativeArgs: native?.[2] ? native[2].split(',').map((s) => s.trim()).filter(Boolean) : [],
        isEnum: enums.has(baseType),
      });
    }
    return { kind, name, schema, table, fields };
  });
}

/** The column as information_schema describes it. */
export interface DbColumn {
  data_type: string;
  udt_name: string;
  is_nullable: 'YES' | 'NO';
  character_maximum_length: number | null;
  numeric_precision: number | null;
  numeric_scale: number | null;
  datetime_precision: number | null;
}

/**
 * Whether a Prisma field type describes the database column; returns the reason when not.
 * Mapping (Prisma's PostgreSQL connector): String↔text (or @db.VarChar/Char/Uuid/Inet/Citext/Xml),
 * Int↔integer (@db.SmallInt), BigInt↔bigint, Float↔double precision (@db.Real), Decimal↔numeric,
 * DateTime↔timestamp (@db.Timestamptz/Date/Time/Timetz), Boolean↔boolean, Json↔jsonb (@db.Json),
 * Bytes↔bytea, enums↔their type, Unsupported("t")↔t.
 */
export function typeMismatch(field: PrismaField, col: DbColumn, enumDbName?: string): string | null {
  const udt = col.data_type === 'ARRAY' ? col.udt_name.replace(/^_/, '') : col.udt_name;
  if (field.list !== (col.data_type === 'ARRAY')) {
    return field.list ? 'the model has a list but the column is not an array' : 'the column is an array but the model field is not a list';
  }
  let expected: string;
  if (field.isEnum) {
    expected = enumDbName ?? field.type;
  } else if (field.type.startsWith('Unsupported(')) {
    const want = /Unsupported\("([^"]*)"\)/.exec(field.type)![1].replace(/\(.*$/, '');
    return [udt, col.data_type].includes(want) ? null : `Unsupported("${want}") but the column is ${col.data_type}`;
  } else {
    const native = field.nativeType;
    const byNative: Record<string, Record<string, string>> = {
      String: { Text: 'text', VarChar: 'varchar', Char: 'bpchar', Uuid: 'uuid', Inet: 'inet', Citext: 'citext', Xml: 'xml', Bit: 'bit', VarBit: 'varbit' },
      Int: { Integer: 'int4', SmallInt: 'int2', Oid: 'oid' },
      BigInt: { BigInt: 'int8' },
      Float: { DoublePrecision: 'float8', Real: 'float4' },
      Decimal: { Decimal: 'numeric', Money: 'money' },
      DateTime: { Timestamp: 'timestamp', Timestamptz: 'timestamptz', Date: 'date', Time: 'time', Timetz: 'timetz' },
      Boolean: { Boolean: 'bool' },
      Json: { Json: 'json', JsonB: 'jsonb' },
      Bytes: { ByteA: 'bytea' },
    };
    const defaults: Record<string, string> = {
      String: 'text', Int: 'int4', BigInt: 'int8', Float: 'float8', Decimal: 'numeric', DateTime: 'timestamp',
      Boolean: 'bool', Json: 'jsonb', Bytes: 'bytea',
    };
    const table = byNative[field.type];
    if (!table) return `unknown Prisma type ${field.type}`;
    if (native && !table[native]) return `@db.${native} is not a native type of ${field.type}`;
    expected = native ? table[native] : defaults[field.type];
    if (field.type === 'Decimal' && native === 'Decimal' && field.nativeArgs.length === 2 && udt === 'numeric') {
      const [p, s] = field.nativeArgs.map(Number);
      if (col.numeric_precision !== p || col.numeric_scale !== s) {
        return `@db.Decimal(${p}, ${s}) but the column is numeric(${col.numeric_precision ?? ''}, ${col.numeric_scale ?? ''})`;
      }
    }
    if (native === 'VarChar' && field.nativeArgs.length === 1 && col.character_maximum_length !== Number(field.nativeArgs[0])) {
      return `@db.VarChar(${field.nativeArgs[0]}) but the column is varchar(${col.character_maximum_length ?? ''})`;
    }
  }
  return expected === udt ? null : `${field.type}${field.nativeType ? ` @db.${field.nativeType}` : ''} expects ${expected} but the column is ${udt}`;
}
