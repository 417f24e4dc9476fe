import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** The codes the organizations module answers with (organizations, members, invitations, workspaces, settings). */
export const OrganizationsErrors = defineErrorCodes({
  'organization.personal': { status: 403, description: 'a personal organization cannot be deleted' },
  'member.not_found': { status: 404, description: 'the user is not a member of the organization' },
  'membership.owner_only': { status: 403, description: 'only an owner can grant, take away or remove the role owner' },
  'membership.last_owner': { status: 409, description: 'the organization would be left without an owner' },
  'invitation.not_found': { status: 404, description: 'the invitation is unknown, already used, revoked or expired' },
  'invitation.personal_organization': { status: 422, description: 'a personal organization cannot have other members' },
  'invitation.already_member': { status: 409, description: 'the invitee is already a member' },
  'invitation.pending_exists': { status: 409, description: 'the e-mail already has a pending invitation' },
  'invitation.mail_limited': {
    status: 429,
    description: 'too many invitations from this organization within the hour, each of which mails its invitee: to this address or in all; wait details.retryAfterSeconds',
  },
  'invitation.not_pending': { status: 409, description: 'the invitation is already accepted, revoked or expired' },
  'invitation.email_mismatch': { status: 403, description: 'the invitation was sent to another e-mail address' },
  'workspace.name_taken': { status: 409, description: 'a workspace of that name already exists' },
  'workspace.not_empty': { status: 409, description: 'the workspace still holds knowledge collections (their foreign key refuses the deletion): delete them first' },
  'setting.not_found': { status: 404, description: 'the setting is not set' },
  'settings.invalid_scope': { status: 400, description: 'the scope is neither org nor an app code' },
  'settings.invalid_key': { status: 400, description: 'a key is not lowercase letters, digits, _ and .' },
  'settings.empty': { status: 400, description: 'values names no setting' },
  'settings.invalid': { status: 400, description: 'a value does not fit its setting\'s schema (details lists each)' },
  'feature_flag.not_found': { status: 404, description: 'the feature flag is not set' },
  'feature_flag.invalid_name': { status: 400, description: 'the flag name is not lowercase letters, digits, _ and .' },
});
