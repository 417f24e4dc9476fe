import { applyDecorators } from '@nestjs/common';
import { IsEmail, ValidateBy, type ValidationArguments } from 'class-validator';

/** C0 controls and DEL: a CR or LF in an address written into an e-mail header adds a header of the sender's choosing. */
const CONTROL = /[\u0000-\u001f\u007f]/;

/** What is wrong with an address IsEmail accepts, as the app takes addresses; undefined when nothing is. */
function plainAddressProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined; // IsEmail says it
  if (CONTROL.test(value)) return 'must not contain control characters (such as CR or LF)';
  // RFC 5321 lets a quoted local part hold spaces, commas, <> and (escaped) anything: not an address a person signs up
  // with, and one that a mail header or a list of recipients reads otherwise
  if (value.includes('"')) return 'must not have a quoted local part ("...")@';
  return undefined;
}

/**
 * An e-mail address as the app takes it (registration, sign-in, invitations, e-mail changes): IsEmail, and neither
 * control characters nor a quoted local part (IsEmail accepts `"x\r\nBcc: y@evil.test"@example.com`).
 */
export function IsEmailAddress(): PropertyDecorator {
  return applyDecorators(IsEmail(), ValidateBy({
    name: 'isPlainEmailAddress',
    validator: {
      validate: (value: unknown) => plainAddressProblem(value) === undefined,
      defaultMessage: (args?: ValidationArguments) => `${args?.property ?? 'email'} ${plainAddressProblem(args?.value) ?? 'must be an email'}`,
    },
  }));
}
