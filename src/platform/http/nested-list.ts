import { applyDecorators } from '@nestjs/common';
import { Transform, Type } from 'class-transformer';
import { ValidateNested } from 'class-validator';

/**
 * A list of nested DTOs, each element an object (`what` names it in the message). class-validator validates an array
 * found in an element's place as a further list of the DTO: `{"entries":[[{...}]]}` passed, and the service got an array
 * for an element (a 500, or a misleading business error). Such an element is made null before validation, so that it
 * fails at its own index (entries.0) with this message, as any other element that is no object. Use it in place of
 * `@ValidateNested({ each: true }) @Type(() => X)` on every array of nested DTOs.
 */
export const NestedList = (type: () => new () => object, what: string): PropertyDecorator => applyDecorators(
  Transform(({ value }: { value: unknown }) => (Array.isArray(value) ? value.map((v: unknown) => (Array.isArray(v) ? null : v)) : value)),
  ValidateNested({ each: true, message: `each element of $property must be ${what} (an object)` }),
  Type(type),
);
