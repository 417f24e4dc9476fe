import { type ArgumentMetadata, BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';
import { getMetadataStorage, IS_UUID, ValidationTypes, type ValidatorOptions } from 'class-validator';
import { UUID } from './uuid.js';

// @nestjs/swagger keeps each @ApiProperty's options under this key; the document and this check read the same metadata
const API_PROPERTY = 'swagger/apiModelProperties';

interface FieldProblem {
  field: string;
  problems: string[];
}

function flatten(errors: ValidationError[], prefix = ''): FieldProblem[] {
  return errors.flatMap((e) => {
    const field = prefix ? `${prefix}.${e.property}` : e.property;
    const own = e.constraints ? [{ field, problems: Object.values(e.constraints) }] : [];
    return [...own, ...flatten(e.children ?? [], field)];
  });
}

/**
 * The fields an error names at most. A 900 KB body of 100,000 bad strings answered an 87 MB 400 (each problem names its
 * field twice, in details and in the message): the response is bounded, the message saying how many more there were.
 */
export const MAX_FIELD_PROBLEMS = 100;

function invalid(all: FieldProblem[]): BadRequestException {
  const details = all.slice(0, MAX_FIELD_PROBLEMS);
  const more = all.length - details.length;
  return new BadRequestException({
    code: 'validation_failed',
    message: details.map((d) => d.problems.join(', ')).join('; ') + (more > 0 ? `; and ${more} more field(s) with problems` : ''),
    details,
  });
}

const join = (prefix: string, key: string | number) => (typeof key === 'number' ? `${prefix}[${key}]` : prefix ? `${prefix}.${key}` : key);

/**
 * How deeply objects and arrays may nest in a body or query, the body itself counting as the first level. Turning
 * JSON into DTOs (class-transformer) recurses once per level without a bound: a 10 KB body of 5,000 nested arrays
 * overflowed the stack, a 500 on any route, public ones included. No field needs a tenth of this (analytics
 * properties, setting values and integration credentials are small JSON objects).
 */
export const MAX_INPUT_DEPTH = 64;

class TooDeep extends Error {
  constructor(readonly field: string) {
    super(field);
  }
}

/** String.prototype.isWellFormed (ES2024: Node has it, the es2023 lib does not declare it). */
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
const NOT_WELL_FORMED = 'must be well-formed Unicode: it has an unpaired UTF-16 surrogate (\\uD800-\\uDFFF alone)';

/**
 * The field a path names (`entries[3].lines[0].accountId`), built from the place's keys only when a problem is found
 * there: building every value's name as the walks go was a large part of their cost on a batch of 1,000 entries.
 */
function fieldAt(root: string, path: readonly (string | number)[]): string {
  let field = root;
  for (const key of path) field = join(field, key);
  return field;
}

/**
 * Walks an input (see walk) and says what it found: its problems, whether it holds a key Nest's ValidationPipe
 * deletes in place (`constructor`, `prototype`), and whether it is plain JSON data, on which Nest's own walks before
 * class-transformer (stripping those keys, closing array gaps) have nothing to do.
 */
class InputWalk {
  readonly problems: FieldProblem[] = [];
  /** a `constructor` or `prototype` key somewhere (see RequestValidationPipe.transform) */
  strippedKeys = false;
  /**
   * Every object in it is an array (Array.prototype) holding nothing but its items, without gaps, or a plain object
   * (Object.prototype or none) without an own `__proto__`, `constructor` or `prototype` property, enumerable or not: what
   * JSON.parse makes (not the query parser, whose objects have a prototype of their own: Nest's walks run for a query)
   */
  plain = true;
  /** the keys from the input to the value walked */
  private readonly path: (string | number)[] = [];

  constructor(private readonly root: string) {}

  /** fields[i]: the field named by the path's first i keys, valid for i <= known */
  private readonly fields: string[] = [];
  private known = 0;
  private field(key?: string): string {
    const path = this.path;
    this.fields[0] = this.root;
    if (this.known > path.length) this.known = path.length;
    for (let i = this.known; i < path.length; i++) this.fields[i + 1] = join(this.fields[i], path[i]);
    this.known = path.length;
    const field = this.fields[path.length];
    return key === undefined ? field : join(field, key);
  }

  private stringProblems(value: string): void {
    if (value.includes('\u0000')) {
      const field = this.field() || 'body';
      this.problems.push({ field, problems: [`${field} must not contain a NUL character (\\u0000)`] });
    }
    if (!wellFormed(value)) {
      const field = this.field() || 'body';
      this.problems.push({ field, problems: [`${field} ${NOT_WELL_FORMED}`] });
    }
  }

  /**
   * PostgreSQL stores no NUL character, neither in text nor in jsonb: one anywhere in the input, in a value or
   * in a JSON key, is refused here, naming the field, rather than failing in the database. A key `__proto__` is refused
   * too, naming it: JSON.parse makes it an own property, but copied with `=` or Object.assign it would replace the
   * prototype of the object copied into (the JSON body parser refuses it already; this holds for every input the pipe
   * sees, so that keepFreeFormJson can keep the input's objects as they are). The walk also measures the nesting: an
   * object or array deeper than MAX_INPUT_DEPTH throws TooDeep naming it, before anything recurses over the input
   * without a bound (the depth of `value` is the number of objects and arrays it is inside: the path's length). A string
   * (or key) that is not well-formed Unicode, an unpaired UTF-16 surrogate (JSON allows `"\ud800"`), is refused too,
   * naming the field: UTF-8 cannot encode it, so it was stored as U+FFFD with a 200 and the client's value changed
   * without an error.
   */
  walk(value: unknown): void {
    if (typeof value === 'string') {
      this.stringProblems(value);
      return;
    }
    if (value === null || typeof value !== 'object') return;
    const path = this.path;
    if (path.length >= MAX_INPUT_DEPTH) throw new TooDeep(this.field() || 'body');
    if (Array.isArray(value)) {
      // an array with an own property besides its items (Nest's walks reach its values too)
      if (this.plain && (Object.getPrototypeOf(value) !== Array.prototype || Object.keys(value).length !== value.length)) this.plain = false;
      for (let i = 0; i < value.length; i++) {
        const v: unknown = value[i];
        if (v === undefined) {
          if (!(i in value)) this.plain = false; // a gap: Nest's closeArrayGaps closes it
        } else if (typeof v === 'string' || (v !== null && typeof v === 'object')) {
          path.push(i);
          this.walk(v);
          path.pop();
          if (this.known > path.length) this.known = path.length;
        }
      }
      return;
    }
    const proto: unknown = Object.getPrototypeOf(value);
    if (this.plain && ((proto !== Object.prototype && proto !== null) || Object.hasOwn(value, '__proto__') || Object.hasOwn(value, 'constructor') || Object.hasOwn(value, 'prototype'))) {
      this.plain = false;
    }
    const o = value as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (key.includes('\u0000')) this.problems.push({ field: this.field(key.replaceAll('\u0000', '\\u0000')), problems: ['a key must not contain a NUL character (\\u0000)'] });
      else if (!wellFormed(key)) this.problems.push({ field: this.field(key.replace(/\p{Cs}/gu, (c) => `\\u${c.charCodeAt(0).toString(16)}`)), problems: [`a key ${NOT_WELL_FORMED}`] });
      else if (key === '__proto__') {
        const field = this.field(key);
        this.problems.push({ field, problems: [`${field} is not accepted: no key may be named __proto__`] });
      } else {
        if (key === 'constructor' || key === 'prototype') this.strippedKeys = true;
        const v = o[key];
        if (typeof v === 'string' || (v !== null && typeof v === 'object')) {
          path.push(key);
          this.walk(v);
          path.pop();
          if (this.known > path.length) this.known = path.length;
        }
      }
    }
  }
}

/** The problems of an input (NUL characters, unpaired surrogates, `__proto__` keys), or the first place it nests too deeply (then only that: the rest is not walked). */
function walkedInput(value: unknown, field: string): InputWalk {
  const walk = new InputWalk(field);
  try {
    walk.walk(value);
  } catch (err) {
    if (!(err instanceof TooDeep)) throw err;
    const deep = new InputWalk(field);
    deep.problems.push({ field: err.field, problems: [`${err.field} is nested too deeply: objects and arrays may nest at most ${MAX_INPUT_DEPTH} levels deep (the body is the first)`] });
    deep.plain = false;
    return deep;
  }
  return walk;
}

/**
 * Inputs that InputWalk found plain (InputWalk.plain) and free of keys to strip, while the pipe transforms them: Nest's
 * stripProtoKeys and closeArrayGaps would walk each again, in place, for nothing (kept per value, not on the pipe: one
 * pipe transforms many requests' inputs at once).
 */
const plainInputs = new WeakSet<object>();

/** Whether @ApiProperty documents `key` of the class with prototype `proto` as nullable (read once per class and key). */
const nullableKeys = new WeakMap<object, Map<string, boolean>>();
function isNullable(proto: object, key: string): boolean {
  let keys = nullableKeys.get(proto);
  if (!keys) nullableKeys.set(proto, (keys = new Map()));
  let nullable = keys.get(key);
  if (nullable === undefined) {
    nullable = (Reflect.getMetadata(API_PROPERTY, proto, key) as { nullable?: boolean } | undefined)?.nullable === true;
    keys.set(key, nullable);
  }
  return nullable;
}

/**
 * class-validator looks a class's rules up again for every object it validates, scanning every decorated class
 * for parents each time (MetadataStorage.getTargetValidationMetadatas, then groupByPropertyName): in a batch of
 * 1,000 journal entries that is ~3,000 scans over all our DTO classes, a third of the request's CPU (profile in
 * bench/README.md). The rules are fixed once the decorators have run, so the answers are kept per class and
 * options, and forgotten whenever a rule is added (a class decorated later).
 */
/** Counts the rules added after the first lookups (see memoizeValidationMetadata): what was compiled from the rules is compiled again. */
let metadataGeneration = 0;
function memoizeValidationMetadata(): void {
  type Storage = {
    getTargetValidationMetadatas: (target: unknown, schema: string, always: boolean, strictGroups: boolean, groups?: string[]) => object[];
    groupByPropertyName: (metadata: object[]) => Record<string, object[]>;
    addValidationMetadata: (metadata: object) => void;
    addConstraintMetadata: (metadata: object) => void;
  };
  const storage = getMetadataStorage() as unknown as Storage;
  const lookUp = storage.getTargetValidationMetadatas.bind(storage);
  const group = storage.groupByPropertyName.bind(storage);
  let byTarget = new Map<unknown, Map<string, object[]>>();
  let grouped = new WeakMap<object[], Record<string, object[]>>();
  const forget = () => {
    metadataGeneration++;
    byTarget = new Map();
    grouped = new WeakMap();
  };
  storage.getTargetValidationMetadatas = (target, schema, always, strictGroups, groups) => {
    const key = `${schema}\u0000${always}\u0000${strictGroups}\u0000${groups?.join('\u0001') ?? ''}`;
    let forTarget = byTarget.get(target);
    if (!forTarget) byTarget.set(target, (forTarget = new Map()));
    let found = forTarget.get(key);
    if (!found) forTarget.set(key, (found = lookUp(target, schema, always, strictGroups, groups)));
    return found;
  };
  storage.groupByPropertyName = (metadata) => {
    let found = grouped.get(metadata);
    if (!found) grouped.set(metadata, (found = group(metadata)));
    return found;
  };
  for (const add of ['addValidationMetadata', 'addConstraintMetadata'] as const) {
    const original = storage[add].bind(storage);
    storage[add] = (metadata) => {
      forget();
      original(metadata);
    };
  }
}
memoizeValidationMetadata();

/** A rule as class-validator's metadata storage holds it (the fields the fast check reads). */
interface RuleMetadata {
  type: string;
  target: object | string;
  propertyName: string;
  constraints: unknown[];
  constraintCls: object;
  each?: boolean;
  validateIf?: (object: object, value: unknown) => boolean;
}
interface ConstraintMetadata {
  async: boolean;
  instance: { validate(value: unknown, args: object): unknown };
}
/**
 * The rules of one property, compiled for the check: when they apply (IsOptional, ValidateIf), the checks (each rule's
 * arguments and constraint functions), the schemas of its nested DTOs.
 */
interface PropertyRules {
  property: string;
  /** each condition's constraints: the first is the function (called on them, as class-validator calls it) */
  conditions: unknown[][];
  /**
   * validators: the constraints' instances, taken once (class-validator finds each again, per value, by a linear search of
   * its default container: the app sets none with useContainer, so the instance never changes)
   */
  checks: { rule: RuleMetadata; validators: ConstraintMetadata['instance'][] }[];
  nestedSchemas: string[];
}
/** A class's rules: its properties (none else is allowed), in class-validator's order. */
interface ClassRules {
  properties: PropertyRules[];
  known: Set<string>;
}

const isPromise = (v: unknown) => v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';

/**
 * A check that a value is valid, in the order and with the functions class-validator uses, without what makes
 * class-validator slow on large bodies (an error object, filtered rule lists and argument objects per property of
 * every object, then pruned; ~40% of the app's CPU for a batch of 100 journal entries). It only ever answers "valid":
 * anything it does not mirror exactly (a rule of another kind, an asynchronous constraint, groups, a Set or Map, an
 * array hole) and any failed check sends the value to class-validator, which then reports the errors as always.
 * A class's rules are compiled once per class and schema into flat lists (looking them up per object, through the key
 * class-validator's lookup is memoized by, was a fifth of the check), and compiled again when a rule is added.
 */
class FastValidityCheck {
  private readonly storage = getMetadataStorage() as unknown as {
    getTargetValidationMetadatas(target: unknown, schema: string | undefined, always: boolean, strictGroups: boolean, groups?: string[]): RuleMetadata[];
    groupByPropertyName(metadata: RuleMetadata[]): Record<string, RuleMetadata[]>;
    getTargetValidatorConstraints(cls: object): ConstraintMetadata[];
  };
  /** per class, then schema ('' for none); null: left to class-validator */
  private compiled = new Map<unknown, Map<string, ClassRules | null>>();
  private generation = metadataGeneration;

  /**
   * Whether options are the ones this check mirrors: unknown properties refused, no groups, nothing skipped. An object of a
   * class without rules is left to class-validator, whatever forbidUnknownValues says.
   */
  applies(options?: ValidatorOptions): boolean {
    return !!options?.whitelist && !!options.forbidNonWhitelisted && !options.groups?.length && !options.always && !options.strictGroups
      && !options.skipMissingProperties && !options.skipNullProperties && !options.skipUndefinedProperties && !options.stopAtFirstError;
  }

  valid(object: unknown, schema?: string): boolean {
    if (object === null || typeof object !== 'object' || Array.isArray(object)) return false;
    const rules = this.rulesOf((object as object).constructor, schema);
    if (!rules) return false;
    const o = object as Record<string, unknown>;
    for (const key of Object.keys(o)) if (!rules.known.has(key)) return false;
    const properties = rules.properties;
    for (let p = 0; p < properties.length; p++) {
      const r = properties[p];
      const value = o[r.property];
      if (value instanceof Promise) return false;
      let applies = true;
      for (let i = 0; i < r.conditions.length && applies; i++) applies = !!(r.conditions[i][0] as (o: object, v: unknown) => boolean)(o, value);
      if (!applies) continue;
      for (let i = 0; i < r.checks.length; i++) {
        const { rule, validators } = r.checks[i];
        if (rule.validateIf && !rule.validateIf(o, value)) continue;
        const args = { targetName: o.constructor?.name, property: rule.propertyName, object: o, value, constraints: rule.constraints };
        for (let c = 0; c < validators.length; c++) {
          const validator = validators[c];
          if (rule.each && (Array.isArray(value) || value instanceof Set || value instanceof Map)) {
            if (!Array.isArray(value)) return false;
            for (const v of value) {
              const ok = validator.validate(v, args);
              if (!ok || isPromise(ok)) return false;
            }
          } else {
            const ok = validator.validate(value, args);
            if (!ok || isPromise(ok)) return false;
          }
        }
      }
      if (value === undefined) continue;
      for (const nestedSchema of r.nestedSchemas) {
        if (Array.isArray(value)) {
          for (let i = 0; i < value.length; i++) if (!(i in value) || !this.valid(value[i], nestedSchema)) return false;
        } else if (!this.valid(value, nestedSchema)) {
          return false;
        }
      }
    }
    return true;
  }

  /** The rules of a class, or null when it has none (class-validator refuses an unknown value) or one this check does not mirror. */
  private rulesOf(target: unknown, schema: string | undefined): ClassRules | null {
    if (this.generation !== metadataGeneration) {
      this.compiled = new Map();
      this.generation = metadataGeneration;
    }
    let forTarget = this.compiled.get(target);
    if (!forTarget) this.compiled.set(target, (forTarget = new Map()));
    let rules = forTarget.get(schema ?? '');
    if (rules === undefined) forTarget.set(schema ?? '', (rules = this.compile(this.storage.getTargetValidationMetadatas(target, schema, false, false, undefined))));
    return rules;
  }

  private compile(metadata: RuleMetadata[]): ClassRules | null {
    if (!metadata.length) return null;
    const rules: ClassRules = { properties: [], known: new Set() };
    for (const [property, list] of Object.entries(this.storage.groupByPropertyName(metadata))) {
      const r: PropertyRules = { property, conditions: [], checks: [], nestedSchemas: [] };
      for (const rule of list) {
        if (rule.type === ValidationTypes.CONDITIONAL_VALIDATION) r.conditions.push(rule.constraints);
        else if (rule.type === ValidationTypes.NESTED_VALIDATION) r.nestedSchemas.push(typeof rule.target === 'string' ? rule.target : (rule.target as { name: string }).name);
        else if (rule.type === ValidationTypes.CUSTOM_VALIDATION) {
          const constraints = this.storage.getTargetValidatorConstraints(rule.constraintCls);
          if (constraints.some((c) => c.async)) return null;
          r.checks.push({ rule, validators: constraints.map((c) => c.instance) });
        } else if (rule.type !== ValidationTypes.WHITELIST) return null; // IS_DEFINED, PROMISE_VALIDATION: left to class-validator
      }
      rules.properties.push(r);
      rules.known.add(property);
    }
    return rules;
  }
}
const fastCheck = new FastValidityCheck();

/** Whether FastValidityCheck lets `object` skip class-validator under `options` (exported for its test). */
export function passesFastCheck(object: object, options: ValidatorOptions): boolean {
  return fastCheck.applies(options) && fastCheck.valid(object);
}

/**
 * `null` is accepted only where the DTO documents the property as nullable (and there it clears the value);
 * class-validator's @IsOptional() would let it through as if the field were absent. Walks the transformed
 * DTO and its nested DTOs.
 */
function unexpectedNulls(dto: unknown, field: string, out: FieldProblem[], nested = true): void {
  nullsIn(dto, [], field, out, nested);
}
function nullsIn(dto: unknown, path: (string | number)[], root: string, out: FieldProblem[], nested = true): void {
  if (Array.isArray(dto)) {
    for (let i = 0; i < dto.length; i++) {
      const v: unknown = dto[i];
      if (v === null || typeof v !== 'object') continue;
      path.push(i);
      nullsIn(v, path, root, out);
      path.pop();
    }
    return;
  }
  if (dto === null || typeof dto !== 'object') return;
  const proto = Object.getPrototypeOf(dto);
  if (!proto || proto === Object.prototype) return; // free-form JSON
  const d = dto as Record<string, unknown>;
  for (const key of Object.keys(d)) {
    const value = d[key];
    if (value === null) {
      if (isNullable(proto, key)) continue;
      const name = join(fieldAt(root, path), key);
      out.push({ field: name, problems: [`${name} must not be null (leave it out to keep the current value)`] });
    } else if (nested && typeof value === 'object') {
      path.push(key);
      nullsIn(value, path, root, out);
      path.pop();
    }
  }
}

/**
 * class-transformer builds the DTO's free-form JSON (a property typed object, Record or unknown, without @Type) anew,
 * and skips every key named like a member of Object.prototype on the way (constructor, toString, valueOf,
 * hasOwnProperty...): `{"properties":{"constructor":"x","toString":"y"}}` was stored as `{}` with a 2xx. So each
 * free-form value (a plain object class-transformer made) is replaced by the input's own, exactly as parsed: its keys
 * are own data properties, its prototype Object.prototype (a `__proto__` key was refused by InputWalk). On a DTO itself
 * such a key is refused like any unknown property (class-transformer dropped it before whitelisting saw it).
 * `dto` is what class-transformer made of `raw`; answers the value to keep.
 */
function keepFreeFormJson(dto: unknown, raw: unknown, field: string, out: FieldProblem[]): unknown {
  return freeFormKept(dto, raw, [], field, out);
}
function freeFormKept(dto: unknown, raw: unknown, path: (string | number)[], root: string, out: FieldProblem[]): unknown {
  if (dto === null || typeof dto !== 'object' || raw === null || typeof raw !== 'object') return dto;
  if (Array.isArray(dto)) {
    if (Array.isArray(raw)) {
      for (let i = 0; i < dto.length; i++) {
        const d: unknown = dto[i];
        if (d === null || typeof d !== 'object') {
          dto[i] = d; // as the recursion would (it fills a gap)
          continue;
        }
        path.push(i);
        dto[i] = freeFormKept(d, raw[i], path, root, out);
        path.pop();
      }
    }
    return dto;
  }
  if (Object.getPrototypeOf(dto) === Object.prototype) return Array.isArray(raw) ? dto : raw;
  const d = dto as Record<string, unknown>;
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    if (Object.hasOwn(d, key)) {
      const v = d[key];
      if (v === null || typeof v !== 'object') {
        d[key] = v;
        continue;
      }
      path.push(key);
      d[key] = freeFormKept(v, r[key], path, root, out);
      path.pop();
    } else if (key in d) out.push({ field: join(fieldAt(root, path), key), problems: [`property ${key} should not exist`] });
  }
  return dto;
}

/** Where a DTO class holds UUIDs (@IsUUID, `each` for an array of them) and nested DTOs (@ValidateNested). */
interface UuidPlaces {
  uuids: { property: string; each: boolean }[];
  nested: string[];
}
const uuidPlaces = new WeakMap<object, UuidPlaces>();
function uuidPlacesOf(target: object): UuidPlaces {
  let places = uuidPlaces.get(target);
  if (!places) {
    const storage = getMetadataStorage() as unknown as { getTargetValidationMetadatas(target: unknown, schema: string | undefined, always: boolean, strictGroups: boolean): (RuleMetadata & { name?: string })[] };
    const rules = storage.getTargetValidationMetadatas(target, undefined, false, false);
    places = {
      uuids: rules.filter((r) => r.name === IS_UUID).map((r) => ({ property: r.propertyName, each: !!r.each })),
      nested: [...new Set(rules.filter((r) => r.type === ValidationTypes.NESTED_VALIDATION).map((r) => r.propertyName))],
    };
    uuidPlaces.set(target, places);
  }
  return places;
}

/**
 * UUIDs reach the services in one spelling, lower case (PostgreSQL's): @IsUUID accepts upper case, and a service that
 * keys a map or compares by id would take one id spelled two ways for two (one invoice allocated twice, a vendor taken
 * for another). Lower-cases, in place, every property of a validated DTO (and of its nested DTOs) that @IsUUID checked.
 */
function canonicalUuids(dto: unknown): void {
  if (Array.isArray(dto)) {
    for (const v of dto) canonicalUuids(v);
    return;
  }
  if (dto === null || typeof dto !== 'object') return;
  const proto = Object.getPrototypeOf(dto);
  if (!proto || proto === Object.prototype) return; // free-form JSON
  const places = uuidPlacesOf(proto.constructor);
  const d = dto as Record<string, unknown>;
  for (const { property, each } of places.uuids) {
    const v = d[property];
    if (typeof v === 'string') d[property] = v.toLowerCase();
    else if (each && Array.isArray(v)) d[property] = v.map((x) => (typeof x === 'string' ? x.toLowerCase() : x));
  }
  for (const property of places.nested) canonicalUuids(d[property]);
}

/**
 * A path parameter that names a resource by id (`id`, `accountId`, `orgId`...): a UUID in it is taken in lower case, as in a
 * body. Not `userId`: core."User".id is text that other apps write (seed 000: a UUID in whatever case they write it),
 * matched as written.
 */
const isIdParam = (name: string | undefined) => !!name && name !== 'userId' && (name === 'id' || name.endsWith('Id'));

/** Whether a parameter's type is a DTO class (what Nest's pipe validates), not a built-in such as Object or Array. */
const isDtoClass = (metatype: ArgumentMetadata['metatype']): boolean =>
  typeof metatype === 'function' && !([String, Boolean, Number, Array, Object, Buffer, Date] as unknown[]).includes(metatype);

/** Unknown fields are rejected; each invalid field is named in the message and in details. */
class RequestValidationPipe extends ValidationPipe {
  /** Nothing to close in an input InputWalk found plain: no array in it has a gap. */
  protected override closeArrayGaps(value: unknown): void {
    if (value === null || typeof value !== 'object' || !plainInputs.has(value)) super.closeArrayGaps(value);
  }

  /** Nothing to strip from an input InputWalk found plain: no object in it has a `__proto__`, `constructor` or `prototype` property. */
  protected override stripProtoKeys(value: unknown): void {
    if (value === null || typeof value !== 'object' || !plainInputs.has(value)) super.stripProtoKeys(value);
  }

  /** A valid body skips class-validator (FastValidityCheck); an invalid one gets class-validator's errors. */
  protected override validate(object: object, options?: ValidatorOptions): Promise<ValidationError[]> | ValidationError[] {
    if (options && passesFastCheck(object, options)) return [];
    return super.validate(object, options);
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    // a body the document declares as an object (a DTO) and the client sent as other JSON: Nest's pipe took `null` for {}
    // (PATCH /v1/orgs/{id} with null bumped updatedAt, DELETE /v1/me with null ran the erasure). No body at all is still
    // no body: an operation whose body's fields are all optional runs without one (its requestBody is not required).
    if (metadata.type === 'body' && !metadata.data && value !== undefined && isDtoClass(metadata.metatype) && (value === null || typeof value !== 'object' || Array.isArray(value))) {
      const sent = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
      throw invalid([{ field: 'body', problems: [`the body must be a JSON object, not ${sent}`] }]);
    }
    let input = value;
    let plain = false;
    if (metadata.type === 'body' || metadata.type === 'query' || metadata.type === 'param') {
      // before super.transform, whose class-transformer recursion a deeply nested input would overflow
      const walk = walkedInput(value, metadata.type === 'param' ? (metadata.data ?? '') : '');
      if (walk.problems.length > 0) throw invalid(walk.problems);
      // super.transform deletes every `constructor` and `prototype` key of the input in place (class-transformer would
      // take a `constructor` value for the class to build): keepFreeFormJson then takes free-form JSON from a copy (the
      // input is JSON, or strings from a query or path, and JSON.parse builds it as the body parser did)
      if (walk.strippedKeys) input = JSON.parse(JSON.stringify(value));
      plain = walk.plain && !walk.strippedKeys && value !== null && typeof value === 'object';
    }
    const nulls: FieldProblem[] = [];
    // the body's own fields first (a missing required field would otherwise hide them), nested DTOs once transformed
    if (metadata.type === 'body' && metadata.metatype && value && typeof value === 'object' && !Array.isArray(value)) {
      unexpectedNulls(Object.assign(Object.create(metadata.metatype.prototype), value), '', nulls, false);
      if (nulls.length > 0) throw invalid(nulls);
    }
    let dto: unknown;
    if (plain) plainInputs.add(value as object);
    try {
      dto = await super.transform(value, metadata);
    } finally {
      if (plain) plainInputs.delete(value as object);
    }
    if (metadata.type === 'body' || metadata.type === 'query') {
      const dropped: FieldProblem[] = [];
      dto = keepFreeFormJson(dto, input, '', dropped);
      if (dropped.length > 0) throw invalid(dropped);
    }
    if (metadata.type === 'body') {
      unexpectedNulls(dto, '', nulls);
      if (nulls.length > 0) throw invalid(nulls);
    }
    if (metadata.type === 'body' || metadata.type === 'query') canonicalUuids(dto);
    else if (metadata.type === 'param' && isIdParam(metadata.data) && typeof dto === 'string' && UUID.test(dto)) dto = dto.toLowerCase();
    return dto;
  }
}

export function validationPipe(): ValidationPipe {
  return new RequestValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    exceptionFactory: (errors) => invalid(flatten(errors)),
  });
}
