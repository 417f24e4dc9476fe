import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'omnizen:public';
/** The route needs no token; the caller is the anonymous principal. */
export const Public = () => SetMetadata(IS_PUBLIC, true);
